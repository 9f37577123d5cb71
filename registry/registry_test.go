package registry_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cronium/executor/registry"
	"github.com/cronium/executor/registry/registrytest"
)

// ctx returns a context bounded well below the test timeout.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// push pushes a one-layer synthetic image as host/repo:tag and returns its
// digest reference.
func push(t *testing.T, c *registry.Client, host, repo, tag, content string) registry.Ref {
	t.Helper()
	ref := registry.Ref{Registry: host, Repository: repo, Tag: tag}
	layer := registrytest.Layer(t, map[string]string{"content.txt": content})
	d, err := c.PushImage(ctx(t), ref, nil, [][]byte{layer})
	if err != nil {
		t.Fatalf("PushImage(%s): %v", ref, err)
	}
	return registry.Ref{Registry: host, Repository: repo, Digest: d}
}

// raw performs an HTTP request against the plain-http test registry.
func raw(t *testing.T, method, url, contentType string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", registry.MediaTypeOCIManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func wantErr(t *testing.T, err, sentinel error, substrings ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", sentinel)
	}
	t.Logf("error as expected: %v", err)
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Fatalf("error %q does not wrap %v", err, sentinel)
	}
	for _, s := range substrings {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestParseRef(t *testing.T) {
	t.Parallel()
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	good := []struct {
		in   string
		want registry.Ref
		str  string
	}{
		{"registry.example/team/tool:1.2", registry.Ref{"registry.example", "team/tool", "1.2", ""}, ""},
		{"registry.example/team/tool", registry.Ref{"registry.example", "team/tool", "latest", ""}, "registry.example/team/tool:latest"},
		{"127.0.0.1:5000/team/tool@" + d, registry.Ref{"127.0.0.1:5000", "team/tool", "", d}, ""},
		{"127.0.0.1:5000/team/tool:v1@" + d, registry.Ref{"127.0.0.1:5000", "team/tool", "v1", d}, ""},
		{"localhost/tool", registry.Ref{"localhost", "tool", "latest", ""}, "localhost/tool:latest"},
		{"localhost:5000/a/b/c:x_Y-1.z", registry.Ref{"localhost:5000", "a/b/c", "x_Y-1.z", ""}, ""},
		{"[::1]:5000/tool:1", registry.Ref{"[::1]:5000", "tool", "1", ""}, ""},
		{"reg.example/my_team/my__tool.x-y--z:_1", registry.Ref{"reg.example", "my_team/my__tool.x-y--z", "_1", ""}, ""},
		{"docker.io/alpine:3", registry.Ref{"docker.io", "library/alpine", "3", ""}, "docker.io/library/alpine:3"},
		{"index.docker.io/team/tool:3", registry.Ref{"docker.io", "team/tool", "3", ""}, "docker.io/team/tool:3"},
	}
	for _, tc := range good {
		got, err := registry.ParseRef(tc.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseRef(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
		str := tc.str
		if str == "" {
			str = tc.in
		}
		if got.String() != str {
			t.Errorf("ParseRef(%q).String() = %q, want %q", tc.in, got.String(), str)
		}
	}

	bad := []struct{ in, want string }{
		{"", "is empty"},
		{"alpine", `does not name a registry: write the registry host first, e.g. registry.example/alpine`},
		{"alpine:3", "does not name a registry"},
		{"team/tool:1", "e.g. registry.example/team/tool:1"},
		{"registry.example/Team/tool", "must be lowercase"},
		{"registry.example/team//tool", "empty path component"},
		{"registry.example/team/tool/", "empty path component"},
		{"registry.example/", "no repository follows the registry host"},
		{"registry.example:5000", "names no repository: write registry/repository, e.g. registry.example:5000/team/tool:1.2"},
		{"localhost", "names no repository"},
		{"registry.example/-tool", "separated by '.', '_', '__' or '-'"},
		{"registry.example/to___ol", "separated by"},
		{"registry.example/tool:", "tag \"\" is not valid"},
		{"registry.example/tool:.x", "not starting with '.' or '-'"},
		{"registry.example/tool:" + strings.Repeat("x", 129), "1 to 128"},
		{"registry.example/tool@sha256:abc", "64 lowercase hex digits"},
		{"registry.example/tool@sha512:" + strings.Repeat("a", 128), "write sha256:"},
		{"registry.example/tool@" + strings.ToUpper(d), "is not valid"},
		{"registry.example/tool:1 ", "white space"},
		{"bad_host.example/tool", "registry host \"bad_host.example\" is not valid"},
		{"registry.example/" + strings.Repeat("a", 250), "the limit is 255"},
	}
	for _, tc := range bad {
		_, err := registry.ParseRef(tc.in)
		if err == nil {
			t.Errorf("ParseRef(%q) succeeded, want an error mentioning %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRef(%q) = %q, want it to mention %q", tc.in, err, tc.want)
		}
		t.Logf("ParseRef(%q): %v", tc.in, err)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var c registry.Client
	img := push(t, &c, reg.Host, "team/tool", "1.2", "one")

	tagged, err := registry.ParseRef(reg.Host + "/team/tool:1.2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Resolve(ctx(t), tagged)
	if err != nil {
		t.Fatalf("Resolve(%s): %v", tagged, err)
	}
	if got != img.Digest {
		t.Fatalf("Resolve(%s) = %s, PushImage returned %s", tagged, got, img.Digest)
	}
	got, err = c.Resolve(ctx(t), img)
	if err != nil || got != img.Digest {
		t.Fatalf("Resolve(%s) = %s, %v", img, got, err)
	}
	if ok, err := c.Exists(ctx(t), img); !ok || err != nil {
		t.Fatalf("Exists(%s) = %v, %v; want true", img, ok, err)
	}

	missing := img
	missing.Digest = "sha256:" + strings.Repeat("0", 64)
	_, err = c.Resolve(ctx(t), missing)
	wantErr(t, err, registry.ErrNotFound, "digest "+missing.Digest+" does not exist in "+reg.Host+"/team/tool")
	if ok, err := c.Exists(ctx(t), missing); ok || err != nil {
		t.Fatalf("Exists(%s) = %v, %v; want false, nil", missing, ok, err)
	}

	_, err = c.Resolve(ctx(t), registry.Ref{Registry: reg.Host, Repository: "team/tool", Tag: "nope"})
	wantErr(t, err, registry.ErrNotFound, "tag nope does not exist in "+reg.Host+"/team/tool")
	_, err = c.Resolve(ctx(t), registry.Ref{Registry: reg.Host, Repository: "no/such/repo", Tag: "1"})
	wantErr(t, err, registry.ErrNotFound, "does not exist in "+reg.Host+"/no/such/repo")
}

func TestResolveUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there any more

	var c registry.Client
	ref := registry.Ref{Registry: host, Repository: "team/tool", Tag: "1"}
	_, err = c.Resolve(ctx(t), ref)
	wantErr(t, err, nil, "registry "+host+" could not be reached")
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("error %q does not wrap the *net.OpError", err)
	}
	_, err = c.Exists(ctx(t), ref)
	wantErr(t, err, nil, "could not be reached")
}

// TestPlainHTTPOverride shows Client.PlainHTTP decides the scheme: forcing
// https to the plain-http registry fails, the default (loopback) works.
func TestPlainHTTPOverride(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var plain registry.Client
	img := push(t, &plain, reg.Host, "team/tool", "1", "x")
	tls := registry.Client{PlainHTTP: func(string) bool { return false }}
	_, err := tls.Resolve(ctx(t), img)
	wantErr(t, err, nil, "could not be reached", "HTTP response to HTTPS client")
}

func TestCosignSignVerify(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var c registry.Client
	signed := push(t, &c, reg.Host, "team/tool", "1", "signed")
	unsigned := push(t, &c, reg.Host, "team/tool", "2", "unsigned")
	keyA, pubA := registrytest.GenerateKey(t)
	_, pubB := registrytest.GenerateKey(t)

	if err := c.SignCosign(ctx(t), signed, keyA); err != nil {
		t.Fatalf("SignCosign: %v", err)
	}
	if err := c.VerifyCosign(ctx(t), signed, [][]byte{pubA}); err != nil {
		t.Fatalf("VerifyCosign with the signing key: %v", err)
	}
	if err := c.VerifyCosign(ctx(t), signed, [][]byte{pubB, pubA}); err != nil {
		t.Fatalf("VerifyCosign with keys B and A: %v", err)
	}
	err := c.VerifyCosign(ctx(t), signed, [][]byte{pubB})
	wantErr(t, err, registry.ErrBadSignature, signed.Name()+"@"+signed.Digest, "signed with another key")
	if errors.Is(err, registry.ErrUnsigned) {
		t.Errorf("a badly signed image is reported unsigned: %v", err)
	}

	err = c.VerifyCosign(ctx(t), unsigned, [][]byte{pubA})
	wantErr(t, err, registry.ErrUnsigned, "has no signature", "expected tag "+registry.CosignSignatureTag(unsigned.Digest))
	if !strings.HasSuffix(registry.CosignSignatureTag(unsigned.Digest), ".sig") ||
		!strings.HasPrefix(registry.CosignSignatureTag(unsigned.Digest), "sha256-") {
		t.Errorf("CosignSignatureTag(%s) = %s", unsigned.Digest, registry.CosignSignatureTag(unsigned.Digest))
	}

	// A tag instead of a digest is refused: signatures are per digest.
	err = c.VerifyCosign(ctx(t), registry.Ref{Registry: reg.Host, Repository: "team/tool", Tag: "1"}, [][]byte{pubA})
	wantErr(t, err, nil, "has no digest")
	// So is signing a digest the registry does not have.
	missing := signed
	missing.Digest = "sha256:" + strings.Repeat("1", 64)
	wantErr(t, c.SignCosign(ctx(t), missing, keyA), registry.ErrNotFound, "does not exist")
}

// TestCosignResign shows SignCosign replaces the signatures already there.
func TestCosignResign(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var c registry.Client
	img := push(t, &c, reg.Host, "team/tool", "1", "x")
	keyA, pubA := registrytest.GenerateKey(t)
	keyB, pubB := registrytest.GenerateKey(t)
	for _, k := range []*ecdsa.PrivateKey{keyA, keyB} {
		if err := c.SignCosign(ctx(t), img, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.VerifyCosign(ctx(t), img, [][]byte{pubB}); err != nil {
		t.Fatalf("the new signature does not verify: %v", err)
	}
	wantErr(t, c.VerifyCosign(ctx(t), img, [][]byte{pubA}), registry.ErrBadSignature, "signed with another key")
}

// TestCosignTagMoved shows signatures follow digests, not tags.
func TestCosignTagMoved(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var c registry.Client
	key, pub := registrytest.GenerateKey(t)
	old := push(t, &c, reg.Host, "team/tool", "stable", "old")
	if err := c.SignCosign(ctx(t), old, key); err != nil {
		t.Fatal(err)
	}
	moved := push(t, &c, reg.Host, "team/tool", "stable", "new")
	if moved.Digest == old.Digest {
		t.Fatal("the two images have the same digest")
	}
	d, err := c.Resolve(ctx(t), registry.Ref{Registry: reg.Host, Repository: "team/tool", Tag: "stable"})
	if err != nil || d != moved.Digest {
		t.Fatalf("Resolve(:stable) = %s, %v; want the new image %s", d, err, moved.Digest)
	}
	if err := c.VerifyCosign(ctx(t), old, [][]byte{pub}); err != nil {
		t.Fatalf("the old digest no longer verifies: %v", err)
	}
	wantErr(t, c.VerifyCosign(ctx(t), moved, [][]byte{pub}), registry.ErrUnsigned, moved.Digest)
}

// TestCosignReplayedSignature copies image X's signature manifest to image
// Y's signature tag: the signature is genuine but names X's digest.
func TestCosignReplayedSignature(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var c registry.Client
	key, pub := registrytest.GenerateKey(t)
	x := push(t, &c, reg.Host, "team/tool", "x", "x")
	y := push(t, &c, reg.Host, "team/tool", "y", "y")
	if err := c.SignCosign(ctx(t), x, key); err != nil {
		t.Fatal(err)
	}
	base := "http://" + reg.Host + "/v2/team/tool/manifests/"
	code, body := raw(t, http.MethodGet, base+registry.CosignSignatureTag(x.Digest), "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET X's signature: %d %s", code, body)
	}
	code, resp := raw(t, http.MethodPut, base+registry.CosignSignatureTag(y.Digest), registry.MediaTypeOCIManifest, body)
	if code != http.StatusCreated {
		t.Fatalf("PUT Y's signature: %d %s", code, resp)
	}
	err := c.VerifyCosign(ctx(t), y, [][]byte{pub})
	wantErr(t, err, registry.ErrBadSignature, "signature is for digest "+x.Digest)
	if err := c.VerifyCosign(ctx(t), x, [][]byte{pub}); err != nil {
		t.Fatalf("X itself: %v", err)
	}
}

// TestCosignOtherRepository copies a signature to another repository: the
// payload names the first repository, so it does not verify there.
func TestCosignOtherRepository(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var c registry.Client
	key, pub := registrytest.GenerateKey(t)
	a := push(t, &c, reg.Host, "team/a", "1", "same")
	if err := c.SignCosign(ctx(t), a, key); err != nil {
		t.Fatal(err)
	}
	b := push(t, &c, reg.Host, "team/b", "1", "same")
	if a.Digest != b.Digest {
		t.Fatal("the same image has two digests")
	}
	// Copy the payload and config blobs and the manifest to team/b.
	code, sigManifest := raw(t, http.MethodGet, "http://"+reg.Host+"/v2/team/a/manifests/"+registry.CosignSignatureTag(a.Digest), "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET signature: %d", code)
	}
	var m struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(sigManifest, &m); err != nil {
		t.Fatal(err)
	}
	var blobs [][]byte
	for _, d := range []string{m.Config.Digest, m.Layers[0].Digest} {
		code, blob := raw(t, http.MethodGet, "http://"+reg.Host+"/v2/team/a/blobs/"+d, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET blob %s: %d", d, code)
		}
		blobs = append(blobs, blob)
	}
	// PushImage uploads blobs; its manifest is a throwaway.
	if _, err := c.PushImage(ctx(t), registry.Ref{Registry: reg.Host, Repository: "team/b", Tag: "scratch"}, blobs[0], blobs[1:]); err != nil {
		t.Fatal(err)
	}
	code, resp := raw(t, http.MethodPut, "http://"+reg.Host+"/v2/team/b/manifests/"+registry.CosignSignatureTag(b.Digest), registry.MediaTypeOCIManifest, sigManifest)
	if code != http.StatusCreated {
		t.Fatalf("PUT signature: %d %s", code, resp)
	}
	wantErr(t, c.VerifyCosign(ctx(t), b, [][]byte{pub}), registry.ErrBadSignature,
		"signature is for image "+reg.Host+"/team/a, not "+reg.Host+"/team/b")
}

func TestCosignEd25519(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var c registry.Client
	img := push(t, &c, reg.Host, "team/tool", "1", "ed")
	key, pub := registrytest.GenerateEd25519Key(t)
	_, ecPub := registrytest.GenerateKey(t)
	if err := c.SignCosign(ctx(t), img, key); err != nil {
		t.Fatalf("SignCosign: %v", err)
	}
	if err := c.VerifyCosign(ctx(t), img, [][]byte{ecPub, pub}); err != nil {
		t.Fatalf("VerifyCosign: %v", err)
	}
	wantErr(t, c.VerifyCosign(ctx(t), img, [][]byte{ecPub}), registry.ErrBadSignature, "signed with another key")
}

// TestCosignFormat reads what SignCosign pushed with plain HTTP and checks
// it against cosign's layout byte for byte, verifying the signature with
// the standard library alone.
func TestCosignFormat(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var c registry.Client
	img := push(t, &c, reg.Host, "team/tool", "1", "fmt")
	key, _ := registrytest.GenerateKey(t)
	if err := c.SignCosign(ctx(t), img, key); err != nil {
		t.Fatal(err)
	}
	base := "http://" + reg.Host + "/v2/team/tool/"
	code, body := raw(t, http.MethodGet, base+"manifests/sha256-"+strings.TrimPrefix(img.Digest, "sha256:")+".sig", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET the signature manifest: %d %s", code, body)
	}
	var m struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        struct {
			MediaType string `json:"mediaType"`
			Size      int    `json:"size"`
			Digest    string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			MediaType   string            `json:"mediaType"`
			Size        int               `json:"size"`
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != "application/vnd.oci.image.manifest.v1+json" ||
		m.Config.MediaType != "application/vnd.oci.image.config.v1+json" || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != "application/vnd.dev.cosign.simplesigning.v1+json" {
		t.Fatalf("signature manifest is not cosign's layout:\n%s", body)
	}
	_, payload := raw(t, http.MethodGet, base+"blobs/"+m.Layers[0].Digest, "", nil)
	wantPayload := `{"critical":{"identity":{"docker-reference":"` + reg.Host + `/team/tool"},` +
		`"image":{"docker-manifest-digest":"` + img.Digest + `"},"type":"cosign container image signature"},"optional":null}`
	if string(payload) != wantPayload {
		t.Fatalf("payload\n%s\nwant\n%s", payload, wantPayload)
	}
	if fmt.Sprintf("sha256:%x", sha256.Sum256(payload)) != m.Layers[0].Digest || len(payload) != m.Layers[0].Size {
		t.Fatal("payload does not match its descriptor")
	}
	_, config := raw(t, http.MethodGet, base+"blobs/"+m.Config.Digest, "", nil)
	wantConfig := `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],` +
		`"os":"","rootfs":{"type":"layers","diff_ids":["` + m.Layers[0].Digest + `"]},"config":{}}`
	if string(config) != wantConfig {
		t.Fatalf("config\n%s\nwant\n%s", config, wantConfig)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Layers[0].Annotations["dev.cosignproject.cosign/signature"])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	if !ecdsa.VerifyASN1(&key.PublicKey, sum[:], sig) {
		t.Fatal("the annotation is not an ASN.1 ECDSA signature of the payload's SHA-256")
	}
}

// Real cosign output, published by the Dangerzone project for
// ghcr.io/freedomofpress/dangerzone/v1: its public key, the signature
// annotation and the payload blob (sha256:88b8a2ac...), and cosign's config
// blob for it (sha256:a3b01184..., 233 bytes).
const (
	dangerzoneKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE3CUlnwh825Z5wQAJV6TekEi6bCK2
YvAg7A+aeerM5hvc4CCCJFBae5AjnsjGHv4V/3xzssck6e51W+b0jU4qVw==
-----END PUBLIC KEY-----
`
	dangerzoneDigest  = "sha256:7396780b5862cf8b37527854a2a2331e5c746b6a71aa1f424258c3bfaf3a1bd7"
	dangerzoneSig     = "MEQCIAQScnT03MVfmxjYyW5qAmvQ6TSoukPuw0HmSVlMBwYEAiAzGb76cvDb4CHJ+H6tD00bW1Sh1CK6opaRmI2ist4p2A=="
	dangerzonePayload = `{"critical":{"identity":{"docker-reference":"ghcr.io/freedomofpress/dangerzone/v1"},"image":{"docker-manifest-digest":"sha256:7396780b5862cf8b37527854a2a2331e5c746b6a71aa1f424258c3bfaf3a1bd7"},"type":"cosign container image signature"},"optional":null}`
	dangerzoneConfig  = `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["sha256:88b8a2ac5b829f47bd25a5a4d9c2ccb0fccff7f53a17477b6d9b5680436aa80f"]},"config":{}}`
)

// TestCosignRealSignature stores a signature made by the real cosign in the
// local registry. Its key verifies it (the error is about the image's
// name, which is ghcr.io's, not the key); another key does not.
func TestCosignRealSignature(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var c registry.Client
	repo := "freedomofpress/dangerzone/v1"
	// PushImage uploads the two blobs; its manifest is a throwaway.
	if _, err := c.PushImage(ctx(t), registry.Ref{Registry: reg.Host, Repository: repo, Tag: "blobs"},
		[]byte(dangerzoneConfig), [][]byte{[]byte(dangerzonePayload)}); err != nil {
		t.Fatal(err)
	}
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:a3b01184f5d756fc9601d3386b49fe1c3cd3eedea08b8a6e11137b2a7988ed5f"},` +
		`"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":252,"digest":"sha256:88b8a2ac5b829f47bd25a5a4d9c2ccb0fccff7f53a17477b6d9b5680436aa80f",` +
		`"annotations":{"dev.cosignproject.cosign/signature":"` + dangerzoneSig + `"}}]}`
	code, resp := raw(t, http.MethodPut, "http://"+reg.Host+"/v2/"+repo+"/manifests/"+registry.CosignSignatureTag(dangerzoneDigest),
		registry.MediaTypeOCIManifest, []byte(manifest))
	if code != http.StatusCreated {
		t.Fatalf("PUT the signature manifest: %d %s", code, resp)
	}
	img := registry.Ref{Registry: reg.Host, Repository: repo, Digest: dangerzoneDigest}
	wantErr(t, c.VerifyCosign(ctx(t), img, [][]byte{[]byte(dangerzoneKey)}), registry.ErrBadSignature,
		"signature is for image ghcr.io/freedomofpress/dangerzone/v1, not "+reg.Host+"/"+repo)
	_, other := registrytest.GenerateKey(t)
	wantErr(t, c.VerifyCosign(ctx(t), img, [][]byte{other}), registry.ErrBadSignature, "signed with another key")
}

func TestCosignBadKeys(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t)
	var c registry.Client
	img := push(t, &c, reg.Host, "team/tool", "1", "k")
	key, pub := registrytest.GenerateKey(t)

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	der384, _ := x509.MarshalPKIXPublicKey(&p384.PublicKey)
	derRSA, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	privDER, _ := x509.MarshalPKCS8PrivateKey(key)
	for _, tc := range []struct {
		key  []byte
		want string
	}{
		{[]byte("not a key"), "public key 2: no PEM block found"},
		{pemOf("PRIVATE KEY", privDER), "this is a private key"},
		{pemOf("CERTIFICATE", []byte{1}), `PEM block is a "CERTIFICATE"`},
		{pemOf("PUBLIC KEY", []byte("garbage")), "not valid PKIX"},
		{pemOf("PUBLIC KEY", der384), "curve P-384 is not supported"},
		{pemOf("PUBLIC KEY", derRSA), "RSA keys are not supported"},
		{append(append([]byte{}, pub...), pub...), "more than one PEM block"},
	} {
		err := c.VerifyCosign(ctx(t), img, [][]byte{pub, tc.key})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("VerifyCosign with a bad key: %v, want it to mention %q", err, tc.want)
		}
		if _, err := registry.ParsePublicKey(tc.key); err == nil {
			t.Errorf("ParsePublicKey accepted a bad key (%s)", tc.want)
		}
	}
	wantErr(t, c.VerifyCosign(ctx(t), img, nil), nil, "no public keys")
	wantErr(t, c.SignCosign(ctx(t), img, p384), nil, "P-384 is not supported")
}

// TestTokenAuth runs against a registry that demands Docker token auth.
func TestTokenAuth(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, registrytest.WithTokenAuth())
	code, _ := raw(t, http.MethodGet, "http://"+reg.Host+"/v2/", "", nil)
	if code != http.StatusUnauthorized {
		t.Fatalf("GET /v2/ without a token answered %d, want 401", code)
	}
	var c registry.Client
	img := push(t, &c, reg.Host, "team/tool", "1", "auth")
	d, err := c.Resolve(ctx(t), registry.Ref{Registry: reg.Host, Repository: "team/tool", Tag: "1"})
	if err != nil || d != img.Digest {
		t.Fatalf("Resolve = %s, %v; want %s", d, err, img.Digest)
	}
	key, pub := registrytest.GenerateKey(t)
	if err := c.SignCosign(ctx(t), img, key); err != nil {
		t.Fatal(err)
	}
	if err := c.VerifyCosign(ctx(t), img, [][]byte{pub}); err != nil {
		t.Fatal(err)
	}
	if reg.TokenRequests() == 0 {
		t.Fatal("no token was requested")
	}
	// A fresh client starts without tokens and fetches its own.
	before := reg.TokenRequests()
	var fresh registry.Client
	if ok, err := fresh.Exists(ctx(t), img); !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	if reg.TokenRequests() != before+1 {
		t.Fatalf("a fresh client made %d token requests, want 1", reg.TokenRequests()-before)
	}
}
