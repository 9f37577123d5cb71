package registry

import (
	"crypto"
	"testing"
)

// Real cosign output for ghcr.io/freedomofpress/dangerzone/v1, published by
// the Dangerzone project (see TestCosignRealSignature).
const (
	realKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3CUlnwh825Z5wQAJV6TekEi6bCK2
YvAg7A+aeerM5hvc4CCCJFBae5AjnsjGHv4V/3xzssck6e51W+b0jU4qVw==
-----END PUBLIC KEY-----
`
	realSig           = "MEQCIAQScnT03MVfmxjYyW5qAmvQ6TSoukPuw0HmSVlMBwYEAiAzGb76cvDb4CHJ+H6tD00bW1Sh1CK6opaRmI2ist4p2A=="
	realPayloadDigest = "sha256:88b8a2ac5b829f47bd25a5a4d9c2ccb0fccff7f53a17477b6d9b5680436aa80f"
	realConfigDigest  = "sha256:a3b01184f5d756fc9601d3386b49fe1c3cd3eedea08b8a6e11137b2a7988ed5f"
)

// TestRealCosignSignature checks that this package builds cosign's payload
// and config byte for byte, and that a signature made by the real cosign
// verifies, for the image it names.
func TestRealCosignSignature(t *testing.T) {
	ref := Ref{Registry: "ghcr.io", Repository: "freedomofpress/dangerzone/v1",
		Digest: "sha256:7396780b5862cf8b37527854a2a2331e5c746b6a71aa1f424258c3bfaf3a1bd7"}
	payload, err := cosignPayload(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d := digestOf(payload); d != realPayloadDigest {
		t.Fatalf("payload %s has digest %s, cosign's has %s", payload, d, realPayloadDigest)
	}
	config := cosignConfig(realPayloadDigest)
	if d := digestOf(config); d != realConfigDigest || len(config) != 233 {
		t.Fatalf("config %s has digest %s (%d bytes), cosign's has %s (233 bytes)", config, d, len(config), realConfigDigest)
	}
	pub, err := ParsePublicKey([]byte(realKey))
	if err != nil {
		t.Fatal(err)
	}
	keys := []crypto.PublicKey{pub}
	if reason := checkCosignPayload(ref, payload, realSig, keys); reason != "" {
		t.Fatalf("cosign's signature does not verify: %s", reason)
	}
	tagged := ref
	tagged.Tag = "latest"
	for ref, want := range map[string]bool{
		"ghcr.io/freedomofpress/dangerzone/v1":                      true,
		"ghcr.io/freedomofpress/dangerzone/v1:latest":               true,
		"ghcr.io/freedomofpress/dangerzone/v1@" + realPayloadDigest: true,
		"ghcr.io/freedomofpress/dangerzone":                         false,
		"ghcr.io/freedomofpress/dangerzone/v2":                      false,
		"evil.example/freedomofpress/dangerzone/v1":                 false,
	} {
		if got := sameRepository(ref, tagged); got != want {
			t.Errorf("sameRepository(%q) = %v, want %v", ref, got, want)
		}
	}
	hub := Ref{Registry: "docker.io", Repository: "library/alpine", Digest: ref.Digest}
	if !sameRepository("index.docker.io/library/alpine", hub) || !sameRepository("docker.io/library/alpine", hub) ||
		cosignIdentity(hub) != "index.docker.io/library/alpine" {
		t.Error("Docker Hub names are not cosign's")
	}
	for _, r := range []Ref{
		{Registry: "ghcr.io", Repository: "freedomofpress/dangerzone/v1", Digest: "sha256:" + realPayloadDigest[7:]},
		{Registry: "ghcr.io", Repository: "other/repo", Digest: ref.Digest},
	} {
		if reason := checkCosignPayload(r, payload, realSig, keys); reason == "" {
			t.Errorf("cosign's signature verified for %s", r)
		}
	}
	if reason := checkCosignPayload(ref, append(payload, ' '), realSig, keys); reason != "signed with another key" {
		t.Errorf("a changed payload: %q", reason)
	}
}

func TestParseChallenge(t *testing.T) {
	scheme, p := parseChallenge(`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:team/tool:pull,push",error="insufficient_scope"`)
	if scheme != "Bearer" || p["realm"] != "https://auth.example/token" || p["service"] != "registry.example" ||
		p["scope"] != "repository:team/tool:pull,push" || p["error"] != "insufficient_scope" {
		t.Fatalf("parseChallenge = %q %v", scheme, p)
	}
	scheme, p = parseChallenge(`Basic realm=basic`)
	if scheme != "Basic" || p["realm"] != "basic" {
		t.Fatalf("parseChallenge = %q %v", scheme, p)
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "127.0.0.1:5000": true, "127.1.2.3": true,
		"[::1]:5000": true, "[::1]": true, "registry.example": false, "10.0.0.1:5000": false, "docker.io": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}
