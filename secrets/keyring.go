package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	cronium "github.com/cronium/executor"
)

const (
	keySize   = 32 // AES-256
	nonceSize = 12 // GCM standard nonce
	maxIDLen  = 32

	// envKeys is the environment variable read by LoadKeyring when no path is given.
	envKeys = "CRONIUM_MASTER_KEYS"

	keyForm   = "want ID:BASE64, where ID is 1-32 characters of A-Z a-z 0-9 _ - and BASE64 is 32 random bytes in standard base64 (generate one with `cronium secret keygen`)"
	createKey = "create a key file with `cronium secret keygen > /etc/cronium/master.keys && chmod 600 /etc/cronium/master.keys` and pass its path, or set " + envKeys + "='ID:BASE64' (several keys separated by ';')"
)

// Keyring holds master keys by id; the primary key encrypts, any key decrypts.
// A Keyring is immutable after it is created and safe for concurrent use.
type Keyring struct {
	primary string
	keys    map[string]cipher.AEAD
}

// kindError is an error with a readable message that matches one of the
// cronium error kinds with errors.Is.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// errDecrypt is returned by Open for a wrong key, a wrong aad or tampered data.
var errDecrypt = &kindError{msg: "secrets: decryption failed (wrong key or tampered data)", kind: cronium.ErrInvalid}

// ParseKeyring parses master keys: one per line, "ID:BASE64" where BASE64 is
// 32 random bytes in standard base64 and ID is 1-32 characters of
// A-Z a-z 0-9 _ -. Blank lines and lines starting with # are ignored. The
// FIRST key is the primary. Errors match cronium.ErrInvalid, name the line
// number and say what is accepted; they never contain key material.
func ParseKeyring(text string) (*Keyring, error) {
	return parseKeyring(text, "master keys", "line")
}

// parseKeyring parses text; source and unit ("line" or "entry") name the
// input in errors.
func parseKeyring(text, source, unit string) (*Keyring, error) {
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	firstSeen := map[string]int{}
	for n, line := range strings.Split(text, "\n") {
		n++ // 1-based
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		field := fmt.Sprintf("%s %s %d", source, unit, n)
		id, enc, ok := strings.Cut(line, ":")
		if !ok {
			return nil, cronium.Invalid(field, "", "has no ':' separating the key id from the key; "+keyForm)
		}
		id, enc = strings.TrimSpace(id), strings.TrimSpace(enc)
		if problem := checkID(id); problem != "" {
			return nil, cronium.Invalid(field, "", problem+"; "+keyForm)
		}
		if prev, dup := firstSeen[id]; dup {
			return nil, cronium.Invalid(field, id, fmt.Sprintf("is a duplicate key id (already used on %s %d); every key needs its own id", unit, prev))
		}
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, cronium.Invalid(field, "", fmt.Sprintf("key %q is not valid standard base64; %s", id, keyForm))
		}
		if len(raw) != keySize {
			clear(raw)
			return nil, cronium.Invalid(field, "", fmt.Sprintf("key %q is %d bytes, want exactly %d random bytes (AES-256); %s", id, len(raw), keySize, keyForm))
		}
		aead, err := newAEAD(raw)
		clear(raw)
		if err != nil {
			return nil, cronium.Invalid(field, "", fmt.Sprintf("key %q cannot be used: %v", id, err))
		}
		k.keys[id] = aead
		firstSeen[id] = n
		if k.primary == "" {
			k.primary = id
		}
	}
	if k.primary == "" {
		return nil, cronium.Invalid(source, "", "contains no keys; "+keyForm+"; "+createKey)
	}
	return k, nil
}

// checkID returns what is wrong with a key id, or "" when it is valid. It
// never quotes the id, which might be misplaced key material.
func checkID(id string) string {
	if id == "" {
		return "the key id before ':' is empty"
	}
	if len(id) > maxIDLen {
		return fmt.Sprintf("the key id before ':' is %d characters long, at most %d are allowed", len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Sprintf("the key id before ':' has a character other than A-Z a-z 0-9 _ - at position %d", i+1)
		}
	}
	return ""
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// LoadKeyring reads master keys from the file at path, in the format of
// [ParseKeyring]. The file must not be readable or writable by its group or
// other users (mode & 0o077 == 0); otherwise the error says to chmod 600 it.
// If path is "", the keys are read from the environment variable
// CRONIUM_MASTER_KEYS, in the same format, where entries may also be
// separated by ';' or ','. If neither is set, the error explains how to
// create a key file.
func LoadKeyring(path string) (*Keyring, error) {
	if path == "" {
		env := os.Getenv(envKeys)
		if strings.TrimSpace(env) == "" {
			return nil, cronium.Invalid("master keys", "", "no key file was given and "+envKeys+" is not set; "+createKey)
		}
		env = strings.NewReplacer(";", "\n", ",", "\n").Replace(env)
		return parseKeyring(env, envKeys, "entry")
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, cronium.Invalid(path, "", "does not exist; "+createKey)
		}
		return nil, fmt.Errorf("secrets: reading master keys: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secrets: reading master keys: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, cronium.Invalid(path, "", "is not a regular file; the master key file must be a plain file with one ID:BASE64 line per key")
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, cronium.Invalid(path, "", fmt.Sprintf("has mode %#o, so users other than the owner can access the master keys; run `chmod 600 %s` (and make sure it is owned by the user running cronium)", perm, path))
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("secrets: reading master keys: %w", err)
	}
	defer clear(data)
	return parseKeyring(string(data), path, "line")
}

// GenerateKey returns a new key line "ID:BASE64" with 32 random bytes, for a
// key file. id must be 1-32 characters of A-Z a-z 0-9 _ -.
func GenerateKey(id string) (string, error) {
	if problem := checkID(id); problem != "" {
		return "", cronium.Invalid("key id", "", strings.Replace(problem, "the key id before ':'", "the key id", 1)+"; want 1-32 characters of A-Z a-z 0-9 _ -")
	}
	raw := make([]byte, keySize)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("secrets: generating key: %w", err)
	}
	defer clear(raw)
	return id + ":" + base64.StdEncoding.EncodeToString(raw), nil
}

// Primary returns the id of the primary key, the one that encrypts.
func (k *Keyring) Primary() string {
	if k == nil {
		return ""
	}
	return k.primary
}

// Seal encrypts plaintext with the primary key. aad (additional authenticated
// data) binds the ciphertext to its owner and name, e.g.
// "user:42/name:DB_PASSWORD", so a ciphertext copied to another row does not
// decrypt. It returns the id of the primary key and
// blob = nonce (12 random bytes) || ciphertext || tag.
func (k *Keyring) Seal(plaintext, aad []byte) (keyID string, blob []byte, err error) {
	if k == nil || k.primary == "" {
		return "", nil, &kindError{msg: "secrets: no master key loaded; " + createKey, kind: cronium.ErrInvalid}
	}
	aead := k.keys[k.primary]
	blob = make([]byte, nonceSize, nonceSize+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(blob); err != nil {
		return "", nil, fmt.Errorf("secrets: generating nonce: %w", err)
	}
	return k.primary, aead.Seal(blob, blob, plaintext, aad), nil
}

// Open decrypts a blob sealed under keyID with the same aad. If keyID is not
// in the keyring, the error (matching cronium.ErrNotFound) names the id and
// says the key must be added back to the keyring. A wrong aad or tampered
// data gives the error "decryption failed (wrong key or tampered data)"
// (matching cronium.ErrInvalid).
func (k *Keyring) Open(keyID string, blob, aad []byte) ([]byte, error) {
	var aead cipher.AEAD
	if k != nil {
		aead = k.keys[keyID]
	}
	if aead == nil {
		return nil, &kindError{
			msg: fmt.Sprintf("secrets: master key %q is not in the keyring; add that key back to the key file "+
				"(below the primary key) to decrypt secrets sealed with it, then run the rotation", keyID),
			kind: cronium.ErrNotFound,
		}
	}
	if len(blob) < nonceSize+aead.Overhead() {
		return nil, errDecrypt
	}
	out, err := aead.Open(nil, blob[:nonceSize], blob[nonceSize:], aad)
	if err != nil {
		return nil, errDecrypt
	}
	return out, nil
}

// Rotate re-encrypts a blob under the primary key. It returns
// (newKeyID, newBlob, changed); changed is false when keyID is already the
// primary key, and then keyID and blob are returned unchanged.
func (k *Keyring) Rotate(keyID string, blob, aad []byte) (string, []byte, bool, error) {
	if k != nil && keyID == k.primary {
		return keyID, blob, false, nil
	}
	plaintext, err := k.Open(keyID, blob, aad)
	if err != nil {
		return keyID, blob, false, err
	}
	defer clear(plaintext)
	newID, newBlob, err := k.Seal(plaintext, aad)
	if err != nil {
		return keyID, blob, false, err
	}
	return newID, newBlob, true, nil
}
