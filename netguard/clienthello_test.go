package netguard

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"
)

// realHello captures the first TLS record crypto/tls sends for serverName.
func realHello(t *testing.T, serverName string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go tls.Client(a, &tls.Config{ServerName: serverName, InsecureSkipVerify: serverName == ""}).Handshake()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := b.Read(hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	for n := 0; n < len(body); {
		k, err := b.Read(body[n:])
		if err != nil {
			t.Fatal(err)
		}
		n += k
	}
	a.Close()
	b.Close()
	return append(hdr, body...)
}

// hello builds a minimal ClientHello record with the given extensions.
func hello(exts ...[]byte) []byte {
	var e []byte
	for _, x := range exts {
		e = append(e, x...)
	}
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // cipher suites
	body = append(body, 1, 0)                // compression
	body = binary.BigEndian.AppendUint16(body, uint16(len(e)))
	body = append(body, e...)
	hs := append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{0x16, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

func ext(typ uint16, data []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

func sni(name string) []byte {
	d := binary.BigEndian.AppendUint16(nil, uint16(len(name)+3))
	d = append(d, 0)
	d = binary.BigEndian.AppendUint16(d, uint16(len(name)))
	return ext(0, append(d, name...))
}

func TestClientHelloName(t *testing.T) {
	cases := []struct {
		name string
		rec  []byte
		want string // the name, or a part of the error
	}{
		{"crypto/tls", realHello(t, "api.example.test"), "api.example.test"},
		{"crypto/tls without SNI", realHello(t, ""), "without SNI"},
		{"built", hello(sni("a.example.com")), "a.example.com"},
		{"ECH", hello(sni("public.example.com"), ext(0xfe0d, []byte{0, 1, 2})), "Encrypted Client Hello"},
		{"ECH before SNI", hello(ext(0xfe0d, []byte{9}), sni("public.example.com")), "Encrypted Client Hello"},
		{"no extensions", hello(), "without SNI"},
		{"truncated", hello(sni("a.example.com"))[:20], "truncated"},
	}
	for _, c := range cases {
		br := bufio.NewReaderSize(bytes.NewReader(c.rec), 16<<10)
		got, err := clientHelloName(br)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
		if br.Buffered() != 0 && err == nil {
			if b, _ := br.Peek(1); b[0] != 0x16 {
				t.Errorf("%s: the ClientHello was consumed", c.name)
			}
		}
	}
}
