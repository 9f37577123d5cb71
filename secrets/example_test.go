package secrets_test

import (
	"fmt"

	"github.com/cronium/executor/secrets"
)

func ExampleKeyring() {
	primary, _ := secrets.GenerateKey("k1")
	keys, err := secrets.ParseKeyring(primary)
	if err != nil {
		panic(err)
	}
	aad := []byte("user:42/name:DB_PASSWORD")
	keyID, blob, _ := keys.Seal([]byte("s3cr3t"), aad)
	plain, _ := keys.Open(keyID, blob, aad)
	_, err = keys.Open(keyID, blob, []byte("user:43/name:DB_PASSWORD"))
	fmt.Println(keyID, string(plain))
	fmt.Println(err)
	// Output:
	// k1 s3cr3t
	// secrets: decryption failed (wrong key or tampered data)
}
