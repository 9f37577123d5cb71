package redact_test

import (
	"fmt"
	"os"

	"github.com/cronium/executor/redact"
)

func ExampleRedactor() {
	r := redact.New([][]byte{[]byte("hunter22")})
	// The script printed its password in two writes.
	for _, chunk := range []string{"connecting with password hun", "ter22\n", "done\n"} {
		os.Stdout.Write(r.Write([]byte(chunk)))
	}
	os.Stdout.Write(r.Flush())
	// Output:
	// connecting with password ***
	// done
}

func ExampleBytes() {
	out := redact.Bytes([]byte(`{"dsn":"postgres://app:s3cr3t@db/app"}`), [][]byte{[]byte("s3cr3t")})
	fmt.Println(string(out))
	// Output: {"dsn":"postgres://app:***@db/app"}
}
