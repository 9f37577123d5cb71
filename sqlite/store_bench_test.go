package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	cronium "github.com/cronium/executor"
)

// BenchmarkReadyHeads measures one admission query against a 10,000-deep queue of 100 users.
func BenchmarkReadyHeads(b *testing.B) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(b.TempDir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var xs []*cronium.Execution
	for u := 0; u < 100; u++ {
		usr, _ := st.CreateUser(ctx, fmt.Sprintf("u%d", u), "pro", false)
		ev := cronium.Event{Name: "e", Language: cronium.Bash, Script: "x"}
		ev.Normalize(cronium.DefaultTiers()["pro"])
		st.PutEvent(ctx, usr.ID, &ev)
		for i := 0; i < 100; i++ {
			xs = append(xs, &cronium.Execution{EventID: ev.ID, UserID: usr.ID, Trigger: cronium.TriggerAPI, Attempt: 1, Strategy: "cold"})
		}
	}
	if _, err := st.EnqueueMany(ctx, xs, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := st.ReadyHeads(ctx, time.Now(), 4)
		if err != nil || len(got) != 400 {
			b.Fatalf("%d %v", len(got), err)
		}
	}
}
