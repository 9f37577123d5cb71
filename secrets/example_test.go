package secrets_test

import (
	"fmt"
	"os"

	"github.com/cronium/executor/secrets"
)

func ExampleRedactor() {
	r := secrets.NewRedactor([][]byte{[]byte("hunter22")})
	// The script printed its password in two writes.
	for _, chunk := range []string{"connecting with password hun", "ter22\n", "done\n"} {
		os.Stdout.Write(r.Write([]byte(chunk)))
	}
	os.Stdout.Write(r.Flush())
	// Output:
	// connecting with password ***
	// done
}

func ExampleRedactBytes() {
	out := secrets.RedactBytes([]byte(`{"dsn":"postgres://app:s3cr3t@db/app"}`), [][]byte{[]byte("s3cr3t")})
	fmt.Println(string(out))
	// Output: {"dsn":"postgres://app:***@db/app"}
}

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
