package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	tokenService = "registrytest"
	tokenIssuer  = "registrytest-token-server"
)

// startTokenServer starts a Docker token server that gives anyone a token
// for whatever scope they ask, signed (ES256, x5c header) with a fresh
// self-signed certificate the registry trusts. It returns the registry's
// YAML auth section. Each token handed out increments count.
func startTokenServer(t testing.TB, dir string, count *atomic.Int64) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating the token signing key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: tokenIssuer},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("creating the token signing certificate: %v", err)
	}
	certFile := filepath.Join(dir, "token-root.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatalf("writing the token certificate: %v", err)
	}
	header := b64url(mustJSON(map[string]any{
		"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(der)},
	}))

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		type access struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		}
		grants := []access{}
		for _, scope := range req.URL.Query()["scope"] {
			// repository:<name>:<action,action>; the name has no ':'.
			parts := strings.Split(scope, ":")
			if len(parts) != 3 {
				http.Error(w, "bad scope "+scope, http.StatusBadRequest)
				return
			}
			grants = append(grants, access{Type: parts[0], Name: parts[1], Actions: strings.Split(parts[2], ",")})
		}
		now := time.Now()
		jti := make([]byte, 8)
		_, _ = rand.Read(jti)
		claims := b64url(mustJSON(map[string]any{
			"iss": tokenIssuer, "sub": "", "aud": req.URL.Query().Get("service"),
			"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
			"jti": hex.EncodeToString(jti), "access": grants,
		}))
		sum := sha256.Sum256([]byte(header + "." + claims))
		r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		sig := make([]byte, 64) // JWS ES256: R and S, 32 bytes each
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		token := header + "." + claims + "." + b64url(sig)
		count.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token": token, "access_token": token, "expires_in": 300})
	}))
	t.Cleanup(srv.Close)

	return fmt.Sprintf(`auth:
  token:
    realm: %s/token
    service: %s
    issuer: %s
    rootcertbundle: %s
`, srv.URL, tokenService, tokenIssuer, certFile)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
