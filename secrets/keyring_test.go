package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cronium "github.com/cronium/executor"
)

func mustKey(t *testing.T, id string) string {
	t.Helper()
	line, err := GenerateKey(id)
	if err != nil {
		t.Fatalf("GenerateKey(%q): %v", id, err)
	}
	return line
}

func mustKeyring(t *testing.T, text string) *Keyring {
	t.Helper()
	k, err := ParseKeyring(text)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return k
}

func TestGenerateKey(t *testing.T) {
	line := mustKey(t, "k1")
	id, enc, ok := strings.Cut(line, ":")
	if !ok || id != "k1" {
		t.Fatalf("GenerateKey line %q, want k1:BASE64", line)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(raw) != 32 {
		t.Fatalf("GenerateKey key decodes to %d bytes, err %v; want 32 bytes", len(raw), err)
	}
	if other := mustKey(t, "k1"); other == line {
		t.Fatal("two GenerateKey calls returned the same key")
	}
	for _, bad := range []string{"", "has space", "a:b", strings.Repeat("x", 33)} {
		if _, err := GenerateKey(bad); !errors.Is(err, cronium.ErrInvalid) {
			t.Errorf("GenerateKey(%q) error %v, want ErrInvalid", bad, err)
		}
	}
}

func TestSealOpen(t *testing.T) {
	k := mustKeyring(t, "# master keys\n\n"+mustKey(t, "main")+"\n")
	if k.Primary() != "main" {
		t.Fatalf("Primary() = %q, want main", k.Primary())
	}
	aad := []byte("user:42/name:DB_PASSWORD")
	plain := []byte("correct horse battery staple")

	id, blob, err := k.Seal(plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	if id != "main" {
		t.Errorf("Seal key id %q, want main", id)
	}
	if len(blob) != 12+len(plain)+16 {
		t.Errorf("blob is %d bytes, want nonce(12)+plaintext(%d)+tag(16)", len(blob), len(plain))
	}
	if bytes.Contains(blob, plain) {
		t.Error("blob contains the plaintext")
	}
	got, err := k.Open(id, blob, aad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v; want %q", got, err, plain)
	}

	// Each Seal uses a fresh nonce.
	if _, blob2, _ := k.Seal(plain, aad); bytes.Equal(blob, blob2) {
		t.Error("sealing twice gave the same blob")
	}

	// Empty plaintext round-trips too.
	id, empty, err := k.Seal(nil, aad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(id, empty, aad); err != nil || len(got) != 0 {
		t.Errorf("Open(empty) = %q, %v", got, err)
	}
}

func TestOpenFailures(t *testing.T) {
	k := mustKeyring(t, mustKey(t, "main"))
	aad := []byte("user:42/name:DB_PASSWORD")
	id, blob, err := k.Seal([]byte("s3cr3t-value"), aad)
	if err != nil {
		t.Fatal(err)
	}

	wantDecrypt := func(name string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "decryption failed (wrong key or tampered data)") {
			t.Errorf("%s: error %v, want decryption failed (wrong key or tampered data)", name, err)
		}
		if !errors.Is(err, cronium.ErrInvalid) {
			t.Errorf("%s: error %v does not match cronium.ErrInvalid", name, err)
		}
	}

	_, err = k.Open(id, blob, []byte("user:43/name:DB_PASSWORD"))
	wantDecrypt("wrong aad", err)
	_, err = k.Open(id, blob, nil)
	wantDecrypt("missing aad", err)

	for i := range blob {
		tampered := bytes.Clone(blob)
		tampered[i] ^= 0x01
		_, err = k.Open(id, tampered, aad)
		wantDecrypt("tampered byte", err)
	}
	_, err = k.Open(id, blob[:len(blob)-1], aad)
	wantDecrypt("truncated", err)
	_, err = k.Open(id, blob[:5], aad)
	wantDecrypt("shorter than a nonce", err)
	_, err = k.Open(id, nil, aad)
	wantDecrypt("empty blob", err)

	// A different key with the same id does not decrypt.
	other := mustKeyring(t, mustKey(t, "main"))
	_, err = other.Open(id, blob, aad)
	wantDecrypt("wrong key", err)

	_, err = k.Open("gone-key", blob, aad)
	if err == nil || !strings.Contains(err.Error(), `"gone-key"`) || !strings.Contains(err.Error(), "add that key back") {
		t.Errorf("unknown key: error %v, want it to name \"gone-key\" and say to add it back", err)
	}
	if !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("unknown key: error %v does not match cronium.ErrNotFound", err)
	}

	var nilRing *Keyring
	if _, _, err := nilRing.Seal([]byte("x"), nil); err == nil {
		t.Error("Seal on a nil Keyring succeeded")
	}
	if _, err := nilRing.Open(id, blob, aad); err == nil {
		t.Error("Open on a nil Keyring succeeded")
	}
}

func TestRotate(t *testing.T) {
	keyA, keyB := mustKey(t, "A"), mustKey(t, "B")
	onlyA := mustKeyring(t, keyA)
	aad := []byte("user:7/name:API_TOKEN")
	plain := []byte("tok_1234567890")

	idA, blobA, err := onlyA.Seal(plain, aad)
	if err != nil || idA != "A" {
		t.Fatalf("Seal under A: %q, %v", idA, err)
	}

	both := mustKeyring(t, keyB+"\n"+keyA+"\n")
	if both.Primary() != "B" {
		t.Fatalf("Primary() = %q, want B (the first key)", both.Primary())
	}
	// Old secrets still open before rotation.
	if got, err := both.Open(idA, blobA, aad); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open under old key = %q, %v", got, err)
	}

	idB, blobB, changed, err := both.Rotate(idA, blobA, aad)
	if err != nil || !changed || idB != "B" {
		t.Fatalf("Rotate = %q, changed %v, %v; want B, true, nil", idB, changed, err)
	}
	onlyB := mustKeyring(t, keyB)
	if got, err := onlyB.Open(idB, blobB, aad); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open after rotation with only B = %q, %v", got, err)
	}
	if _, err := onlyB.Open(idA, blobA, aad); err == nil {
		t.Error("old blob opened without key A")
	}

	id2, blob2, changed, err := both.Rotate(idB, blobB, aad)
	if err != nil || changed || id2 != idB || !bytes.Equal(blob2, blobB) {
		t.Fatalf("second Rotate = %q, changed %v, %v; want the inputs unchanged and changed=false", id2, changed, err)
	}

	// Rotation keeps the aad binding: a wrong aad fails and changes nothing.
	id3, blob3, changed, err := both.Rotate(idA, blobA, []byte("user:8/name:API_TOKEN"))
	if err == nil || changed || id3 != idA || !bytes.Equal(blob3, blobA) {
		t.Fatalf("Rotate with wrong aad = %q, changed %v, %v; want an error and the inputs", id3, changed, err)
	}
	// A key missing from the keyring fails with the unknown-key error.
	if _, _, _, err := onlyB.Rotate(idA, blobA, aad); !errors.Is(err, cronium.ErrNotFound) {
		t.Errorf("Rotate with the old key removed: error %v, want ErrNotFound", err)
	}
}

func TestParseKeyringErrors(t *testing.T) {
	good := mustKey(t, "good")
	_, goodEnc, _ := strings.Cut(good, ":")
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xAB}, 16))
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xCD}, 48))
	notB64 := "zz!!notbase64$$-secretish-material"

	cases := []struct {
		name, text string
		want       []string // substrings of the error
		secret     string   // must not appear in the error
	}{
		{"bad base64", "# keys\n" + "k1:" + notB64 + "\n", []string{"line 2", "base64", "32 random bytes"}, notB64},
		{"16 bytes", "k1:" + short, []string{"line 1", "16 bytes", "32"}, short},
		{"48 bytes", "\n\nk1:" + long, []string{"line 3", "48 bytes"}, long},
		{"bad id", "bad id!:" + goodEnc, []string{"line 1", "A-Z a-z 0-9 _ -"}, goodEnc},
		{"long id", strings.Repeat("x", 33) + ":" + goodEnc, []string{"line 1", "at most 32"}, goodEnc},
		{"empty id", ":" + goodEnc, []string{"line 1", "empty"}, goodEnc},
		{"no colon", goodEnc, []string{"line 1", "ID:BASE64"}, goodEnc},
		{"duplicate id", good + "\n" + "good:" + base64.StdEncoding.EncodeToString(make([]byte, 32)), []string{"line 2", `"good"`, "duplicate", "line 1"}, goodEnc},
		{"empty", "", []string{"no keys", "keygen"}, ""},
		{"only comments", "# nothing here\n\n   \n", []string{"no keys"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, err := ParseKeyring(c.text)
			if err == nil {
				t.Fatalf("ParseKeyring succeeded (primary %q), want an error", k.Primary())
			}
			if !errors.Is(err, cronium.ErrInvalid) {
				t.Errorf("error %v does not match cronium.ErrInvalid", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if c.secret != "" && strings.Contains(err.Error(), c.secret) {
				t.Errorf("error %q contains the key material", err)
			}
			if len(goodEnc) > 8 && strings.Contains(err.Error(), goodEnc[:8]) {
				t.Errorf("error %q contains part of the key material", err)
			}
		})
	}
}

func TestParseKeyringFormat(t *testing.T) {
	a, b := mustKey(t, "key_2025-01"), mustKey(t, "OLD")
	// CRLF line endings, indentation and trailing spaces are accepted.
	k := mustKeyring(t, "# rotated 2025-01\r\n  "+a+"  \r\n\r\n# previous\r\n"+b+"\r\n")
	if k.Primary() != "key_2025-01" {
		t.Errorf("Primary() = %q, want key_2025-01", k.Primary())
	}
	if len(k.keys) != 2 {
		t.Errorf("keyring has %d keys, want 2", len(k.keys))
	}
}

func writeKeyFile(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.keys")
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile is subject to umask
		t.Fatal(err)
	}
	return path
}

func TestLoadKeyringFile(t *testing.T) {
	text := "# primary\n" + mustKey(t, "new") + "\n" + mustKey(t, "old") + "\n"

	open := writeKeyFile(t, text, 0o644)
	_, err := LoadKeyring(open)
	if err == nil {
		t.Fatal("LoadKeyring accepted a 0644 key file")
	}
	if !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), open) {
		t.Errorf("error %q should name the file and say chmod 600", err)
	}

	private := writeKeyFile(t, text, 0o600)
	k, err := LoadKeyring(private)
	if err != nil {
		t.Fatalf("LoadKeyring(0600 file): %v", err)
	}
	if k.Primary() != "new" {
		t.Errorf("Primary() = %q, want new", k.Primary())
	}

	bad := writeKeyFile(t, "# keys\nnew:AAAA\n", 0o600)
	if _, err := LoadKeyring(bad); err == nil || !strings.Contains(err.Error(), bad+" line 2") {
		t.Errorf("LoadKeyring(bad file) error %v, want it to name %s line 2", err, bad)
	}

	missing := filepath.Join(t.TempDir(), "nope.keys")
	if _, err := LoadKeyring(missing); err == nil || !strings.Contains(err.Error(), "keygen") {
		t.Errorf("LoadKeyring(missing) error %v, want a hint to run keygen", err)
	}
}

func TestLoadKeyringEnv(t *testing.T) {
	a, b, c := mustKey(t, "a"), mustKey(t, "b"), mustKey(t, "c")

	t.Setenv("CRONIUM_MASTER_KEYS", a+";"+b+" ; "+c+";")
	k, err := LoadKeyring("")
	if err != nil {
		t.Fatalf("LoadKeyring(env with ';'): %v", err)
	}
	if k.Primary() != "a" || len(k.keys) != 3 {
		t.Errorf("env keyring primary %q with %d keys, want a with 3", k.Primary(), len(k.keys))
	}

	t.Setenv("CRONIUM_MASTER_KEYS", b+","+a)
	if k, err := LoadKeyring(""); err != nil || k.Primary() != "b" {
		t.Errorf("LoadKeyring(env with ','): primary %q, %v; want b", k.Primary(), err)
	}

	t.Setenv("CRONIUM_MASTER_KEYS", a+";b:tooshort")
	if _, err := LoadKeyring(""); err == nil || !strings.Contains(err.Error(), "CRONIUM_MASTER_KEYS entry 2") {
		t.Errorf("LoadKeyring(bad env) error %v, want it to name CRONIUM_MASTER_KEYS entry 2", err)
	}

	t.Setenv("CRONIUM_MASTER_KEYS", "")
	_, err = LoadKeyring("")
	if err == nil || !strings.Contains(err.Error(), "cronium secret keygen") || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadKeyring with nothing set: error %v, want instructions to create a key", err)
	}
}
