package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The harness gives a real server: two sessions claim different rows with
// SKIP LOCKED, a notification reaches a listener, and Stop leaves nothing.
func TestRealServer(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if _, err := a.Exec(ctx, "CREATE TABLE q (id int PRIMARY KEY); INSERT INTO q VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	claim := func(c *pgx.Conn, tx pgx.Tx) int {
		var id int
		if err := tx.QueryRow(ctx, "SELECT id FROM q ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED").Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	ta, _ := a.Begin(ctx)
	tb, _ := b.Begin(ctx)
	if x, y := claim(a, ta), claim(b, tb); x != 1 || y != 2 {
		t.Errorf("claims %d and %d, want 1 and 2", x, y)
	}
	ta.Rollback(ctx)
	tb.Rollback(ctx)

	if _, err := b.Exec(ctx, "LISTEN cronium_test"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "SELECT pg_notify('cronium_test', 'hello')"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := b.WaitForNotification(wctx)
	if err != nil || n.Payload != "hello" {
		t.Errorf("notification %+v, %v", n, err)
	}
	dir := s.dir
	s.Stop()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the server's directory %s is left: %v", dir, err)
	}
}
