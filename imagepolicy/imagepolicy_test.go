package imagepolicy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	notKey := filepath.Join(dir, "not.pub")
	os.WriteFile(notKey, []byte("hello"), 0o644)
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{Registries: []string{"registry.example/team"}}, "images.registries[0]"},
		{Config{Registries: []string{"ok.example", "bad host"}}, "images.registries[1]"},
		{Config{Signature: Signature{Keys: []string{filepath.Join(dir, "missing.pub")}}}, "images.signature.keys[0]"},
		{Config{Signature: Signature{Keys: []string{notKey}}}, "images.signature.keys[0]"},
		{Config{Scanner: Scanner{Command: []string{"scan"}, RefuseAt: "severe"}}, "images.scanner.refuse_at"},
		{Config{Scanner: Scanner{RefuseAt: "high"}}, "images.scanner.command"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.field)
		}
	}
	if err := (Config{Registries: []string{"registry.example", "127.0.0.1:5000"}, Scanner: Scanner{Command: []string{"scan"}, RefuseAt: "critical"}}).Validate(); err != nil {
		t.Errorf("good config: %v", err)
	}
}
