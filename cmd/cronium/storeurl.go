package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/postgres"
	"github.com/cronium/executor/sqlite"
	"github.com/cronium/executor/store"
)

// storeForms says which stores there are, for messages.
const storeForms = "use sqlite:PATH (the default is sqlite:DATA_DIR/cronium.db) or postgres://user:password@host:5432/database"

// storeTarget is a parsed store setting: its kind ("sqlite", "postgres")
// and the path or URL.
type storeTarget struct {
	kind, target string
}

// String is the setting as shown: a PostgreSQL URL's password masked.
func (s storeTarget) String() string {
	if s.kind == "postgres" {
		return postgres.MaskURL(s.target)
	}
	return "sqlite:" + s.target
}

// parseStore reads a store setting (field names it in errors); empty is
// SQLite in dataDir.
func parseStore(field, v, dataDir string) (storeTarget, error) {
	switch {
	case v == "":
		return storeTarget{"sqlite", filepath.Join(dataDir, "cronium.db")}, nil
	case strings.HasPrefix(v, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(v, "sqlite:"), "//")
		if p == "" {
			return storeTarget{}, cronium.Invalid(field, v, "names no file: "+storeForms)
		}
		return storeTarget{"sqlite", p}, nil
	case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
		return storeTarget{"postgres", v}, nil
	}
	return storeTarget{}, cronium.Invalid(field, postgres.MaskURL(v), "is not a store: "+storeForms)
}

// storeTarget is the store the configuration names.
func (c serverConfig) storeTarget() storeTarget {
	t, _ := parseStore("store", c.Store, c.DataDir) // validated at load
	return t
}

// openStore opens the store the configuration names.
func openStore(ctx context.Context, cfg serverConfig) (store.Store, error) {
	t := cfg.storeTarget()
	switch t.kind {
	case "postgres":
		return postgres.Open(ctx, t.target)
	case "sqlite":
		return sqlite.Open(ctx, t.target)
	}
	return nil, fmt.Errorf("unknown store %q", t.kind)
}

// selfNode is this node as the other nodes on the store see it: where its
// sandboxes are (host, data directory) and which engine reaches them.
func selfNode(cfg serverConfig, caps cronium.Capabilities) store.Node {
	host, _ := os.Hostname()
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		dir = cfg.DataDir
	}
	return store.Node{Host: host, DataDir: dir, Engine: caps.Name, Version: version,
		EngineKey: caps.Name + " at " + caps.Address + " on " + host}
}

// scheduleAhead is how long before their time the fires of events whose
// runs may overlap are written to the queue (scheduler.Config.Ahead).
const scheduleAhead = 5 * time.Second
