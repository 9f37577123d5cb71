package registry

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
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
	"strings"
)

const (
	// CosignSignatureAnnotation is the layer annotation holding the base64
	// signature of the layer's payload.
	CosignSignatureAnnotation = "dev.cosignproject.cosign/signature"
	// CosignSignatureType is the payload's critical.type.
	CosignSignatureType = "cosign container image signature"
)

// CosignSignatureTag returns the tag cosign stores the signatures of an
// image digest under: "sha256:abc..." becomes "sha256-abc....sig".
func CosignSignatureTag(digest string) string {
	return strings.Replace(digest, ":", "-", 1) + ".sig"
}

// simpleSigning is cosign's payload. Field order matters: json.Marshal of
// this struct gives the exact bytes cosign signs.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// cosignPayload returns the payload cosign signs for r's digest.
func cosignPayload(r Ref) ([]byte, error) {
	var p simpleSigning
	p.Critical.Identity.DockerReference = cosignIdentity(r)
	p.Critical.Image.DockerManifestDigest = r.Digest
	p.Critical.Type = CosignSignatureType
	return json.Marshal(p)
}

// descriptor and manifest are the parts of an OCI / Docker schema 2 image
// manifest used here, in go-containerregistry's field order.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Size        int64             `json:"size"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType,omitempty"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

// ParsePublicKey parses one PEM "PUBLIC KEY" (PKIX) block, as written by
// `cosign generate-key-pair` (cosign.pub). ECDSA P-256 and Ed25519 keys
// are supported. Use it to check configured keys early; VerifyCosign
// parses its keys the same way.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	block, rest := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found: expected a public key starting with -----BEGIN PUBLIC KEY----- (cosign.pub)")
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("this is a private key (%s): give the public key instead (cosign.pub, -----BEGIN PUBLIC KEY-----)", block.Type)
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is a %q: expected a PUBLIC KEY", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block: give each public key separately")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key is not valid PKIX: %w", err)
	}
	return checkKeyType(pub)
}

// checkKeyType accepts ECDSA P-256 and Ed25519 public keys.
func checkKeyType(pub crypto.PublicKey) (crypto.PublicKey, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on curve %s is not supported: use P-256 (cosign's default) or Ed25519", k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PublicKey:
		return k, nil
	case *rsa.PublicKey:
		return nil, errors.New("RSA keys are not supported: use ECDSA P-256 (cosign's default) or Ed25519")
	default:
		return nil, fmt.Errorf("%T keys are not supported: use ECDSA P-256 (cosign's default) or Ed25519", pub)
	}
}

// verifySignature reports whether sig is a valid signature of payload by pub.
func verifySignature(pub crypto.PublicKey, payload, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(payload)
		return ecdsa.VerifyASN1(k, sum[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, payload, sig)
	}
	return false
}

// VerifyCosign checks that the image r (which must have a digest) carries
// a cosign signature made with one of keys (PEM public keys). It reads the
// signature manifest at tag sha256-<hex>.sig in r's repository and
// succeeds if any layer's payload blob matches its digest, its signature
// verifies with any key, and the payload has type "cosign container image
// signature", names r's digest, and names r's repository (a trailing :tag
// is tolerated). No signature tag gives an error wrapping ErrUnsigned;
// signatures that all fail give an error wrapping ErrBadSignature with a
// reason per layer.
func (c *Client) VerifyCosign(ctx context.Context, r Ref, keys [][]byte) error {
	if err := r.check(true); err != nil {
		return err
	}
	if len(keys) == 0 {
		return errors.New("no public keys given to verify signatures with")
	}
	pubs := make([]crypto.PublicKey, 0, len(keys))
	for i, k := range keys {
		pub, err := ParsePublicKey(k)
		if err != nil {
			return fmt.Errorf("public key %d: %w", i+1, err)
		}
		pubs = append(pubs, pub)
	}
	image := r.Name() + "@" + r.Digest
	sigRef := Ref{Registry: r.Registry, Repository: r.Repository, Tag: CosignSignatureTag(r.Digest)}
	body, _, _, err := c.getManifest(ctx, sigRef)
	if errors.Is(err, ErrNotFound) {
		return &refError{
			msg: fmt.Sprintf("image %s has no signature (expected tag %s)", image, sigRef.Tag),
			err: ErrUnsigned,
		}
	}
	if err != nil {
		return fmt.Errorf("fetching the signatures of %s: %w", image, err)
	}
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return &refError{
			msg: fmt.Sprintf("image %s: signature manifest %s is not valid JSON: %v", image, sigRef, err),
			err: ErrBadSignature,
		}
	}
	var reasons []string
	for i, l := range m.Layers {
		reason, err := c.verifyLayer(ctx, r, l, pubs)
		if err != nil {
			return fmt.Errorf("verifying the signatures of %s: %w", image, err)
		}
		if reason == "" {
			return nil
		}
		reasons = append(reasons, fmt.Sprintf("signature %d: %s", i+1, reason))
	}
	if len(reasons) == 0 {
		reasons = []string{"the signature manifest has no layers"}
	}
	return &refError{
		msg: fmt.Sprintf("image %s has no signature that verifies with the configured keys: %s", image, strings.Join(reasons, "; ")),
		err: ErrBadSignature,
	}
}

// verifyLayer checks one signature layer. It returns "" if the layer is a
// valid signature of r by one of pubs, else why not; err is for failures
// to talk to the registry.
func (c *Client) verifyLayer(ctx context.Context, r Ref, l descriptor, pubs []crypto.PublicKey) (reason string, err error) {
	if l.MediaType != MediaTypeCosignPayload {
		return fmt.Sprintf("layer media type %q is not %s", l.MediaType, MediaTypeCosignPayload), nil
	}
	sig, ok := l.Annotations[CosignSignatureAnnotation]
	if !ok {
		return "no " + CosignSignatureAnnotation + " annotation (keyless and bundle signatures are not supported)", nil
	}
	if !digestRE.MatchString(l.Digest) {
		return fmt.Sprintf("payload digest %q is not a sha256 digest", l.Digest), nil
	}
	if l.Size > maxManifest {
		return fmt.Sprintf("payload is %d bytes: larger than the %d allowed", l.Size, maxManifest), nil
	}
	payload, err := c.getBlob(ctx, r, l.Digest, maxManifest)
	if errors.Is(err, ErrNotFound) {
		return fmt.Sprintf("payload blob %s is missing from the registry", l.Digest), nil
	}
	if err != nil {
		return "", err
	}
	if got := digestOf(payload); got != l.Digest {
		return fmt.Sprintf("payload blob has sha256 %s, not its descriptor's %s", got, l.Digest), nil
	}
	return checkCosignPayload(r, payload, sig, pubs), nil
}

// checkCosignPayload checks a payload and its base64 signature against
// pubs and r. It returns "" if they are valid, else why not. The signature
// is checked first, so an unsigned payload's claims are never reported.
func checkCosignPayload(r Ref, payload []byte, sigB64 string, pubs []crypto.PublicKey) string {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return "signature annotation is not valid base64"
	}
	verified := false
	for _, pub := range pubs {
		if verifySignature(pub, payload, sig) {
			verified = true
			break
		}
	}
	if !verified {
		return "signed with another key"
	}
	var p simpleSigning
	if err := json.Unmarshal(payload, &p); err != nil {
		return fmt.Sprintf("signed payload is not a cosign payload: %v", err)
	}
	switch {
	case p.Critical.Type != CosignSignatureType:
		return fmt.Sprintf("signed payload has type %q, not %q", p.Critical.Type, CosignSignatureType)
	case p.Critical.Image.DockerManifestDigest != r.Digest:
		return fmt.Sprintf("signature is for digest %s", p.Critical.Image.DockerManifestDigest)
	case !sameRepository(p.Critical.Identity.DockerReference, r):
		return fmt.Sprintf("signature is for image %s, not %s", p.Critical.Identity.DockerReference, r.Name())
	}
	return ""
}

// SignCosign signs the image r (which must have a digest and exist) with
// key, an ECDSA P-256 or Ed25519 private key, exactly as `cosign sign
// --key` does, and pushes the signature to tag sha256-<hex>.sig in r's
// repository, replacing any signatures already there. It uploads the
// payload blob, cosign's config blob and an OCI manifest whose layer
// carries the signature annotation.
func (c *Client) SignCosign(ctx context.Context, r Ref, key crypto.Signer) error {
	if err := r.check(true); err != nil {
		return err
	}
	if key == nil {
		return errors.New("no signing key given")
	}
	if _, err := checkKeyType(key.Public()); err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	image := Ref{Registry: r.Registry, Repository: r.Repository, Digest: r.Digest}
	if _, err := c.Resolve(ctx, image); err != nil {
		return fmt.Errorf("signing %s: %w", image, err)
	}
	payload, err := cosignPayload(image)
	if err != nil {
		return fmt.Errorf("signing %s: building the payload: %w", image, err)
	}
	var sig []byte
	if _, ok := key.Public().(ed25519.PublicKey); ok {
		sig, err = key.Sign(rand.Reader, payload, crypto.Hash(0))
	} else {
		sum := sha256.Sum256(payload)
		sig, err = key.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
	if err != nil {
		return fmt.Errorf("signing %s: %w", image, err)
	}
	if !verifySignature(key.Public(), payload, sig) {
		return fmt.Errorf("signing %s: the key produced a signature that does not verify (an ECDSA signer must return ASN.1 DER)", image)
	}
	if err := c.pushCosignSignature(ctx, image, payload, base64.StdEncoding.EncodeToString(sig)); err != nil {
		return fmt.Errorf("signing %s: %w", image, err)
	}
	return nil
}

// cosignConfig is the config blob cosign (go-containerregistry's
// mutate.Append on an empty image) writes for a one-layer signature image.
func cosignConfig(payloadDigest string) []byte {
	return []byte(`{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],` +
		`"os":"","rootfs":{"type":"layers","diff_ids":["` + payloadDigest + `"]},"config":{}}`)
}

// pushCosignSignature uploads payload, the config blob and the signature
// manifest for image's digest.
func (c *Client) pushCosignSignature(ctx context.Context, image Ref, payload []byte, sigB64 string) error {
	payloadDigest := digestOf(payload)
	config := cosignConfig(payloadDigest)
	for _, blob := range [][]byte{payload, config} {
		if _, err := c.pushBlob(ctx, image, blob); err != nil {
			return err
		}
	}
	m := manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeOCIManifest,
		Config:        descriptor{MediaType: MediaTypeOCIConfig, Size: int64(len(config)), Digest: digestOf(config)},
		Layers: []descriptor{{
			MediaType:   MediaTypeCosignPayload,
			Size:        int64(len(payload)),
			Digest:      payloadDigest,
			Annotations: map[string]string{CosignSignatureAnnotation: sigB64},
		}},
	}
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding the signature manifest: %w", err)
	}
	sigRef := Ref{Registry: image.Registry, Repository: image.Repository, Tag: CosignSignatureTag(image.Digest)}
	_, err = c.pushManifest(ctx, sigRef, MediaTypeOCIManifest, body)
	return err
}
