package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Errors reported by Client. Check them with errors.Is; the errors that wrap
// them carry a message naming the image.
var (
	// ErrNotFound says a tag, digest or repository does not exist in the registry.
	ErrNotFound = errors.New("not found in registry")
	// ErrUnsigned says an image has no cosign signature at all.
	ErrUnsigned = errors.New("image has no signature")
	// ErrBadSignature says an image has cosign signatures but none of them
	// verifies with the given keys for this image.
	ErrBadSignature = errors.New("no signature verifies")
)

// Media types of manifests and blobs this package reads and writes.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIManifest        = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex           = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeOCIConfig          = "application/vnd.oci.image.config.v1+json"
	MediaTypeCosignPayload      = "application/vnd.dev.cosign.simplesigning.v1+json"
)

var manifestAccept = strings.Join([]string{
	MediaTypeDockerManifest, MediaTypeDockerManifestList, MediaTypeOCIManifest, MediaTypeOCIIndex,
}, ", ")

const (
	// maxManifest bounds manifests and cosign payloads read into memory
	// (registries refuse manifests over 4 MiB).
	maxManifest = 4 << 20
	// maxErrorBody bounds error bodies read for messages.
	maxErrorBody = 64 << 10
	// DefaultTimeout bounds each HTTP request when Client.HTTP is nil.
	DefaultTimeout = 60 * time.Second
)

var defaultHTTP = &http.Client{Timeout: DefaultTimeout}

// Client talks to registries over the Docker v2 / OCI distribution API.
// The zero value is ready to use. A Client caches anonymous bearer tokens,
// so it must not be copied after first use; it is safe for concurrent use.
type Client struct {
	// HTTP sends the requests; nil means a client with a DefaultTimeout
	// timeout per request.
	HTTP *http.Client
	// PlainHTTP reports whether to speak plain http to a registry (its
	// Registry field, e.g. "127.0.0.1:5000"). Nil means plain http for
	// loopback hosts only (localhost, 127.0.0.0/8, ::1) and https otherwise.
	PlainHTTP func(registry string) bool

	mu     sync.Mutex
	tokens map[string]string // registry + " " + scope -> bearer token
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

func (c *Client) baseURL(registry string) string {
	plain := isLoopback(registry)
	if c.PlainHTTP != nil {
		plain = c.PlainHTTP(registry)
	}
	if plain {
		return "http://" + apiHost(registry)
	}
	return "https://" + apiHost(registry)
}

// isLoopback reports whether a registry host (with optional port) is
// localhost or a loopback IP address.
func isLoopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// request is one registry API call. The URL is /v2/<repository>/<path> on
// ref's registry, or url when set (an upload Location).
type request struct {
	method string
	ref    Ref
	path   string
	url    *url.URL
	header http.Header
	body   []byte
	push   bool // needs push access, not only pull
}

// do sends rq, answering a Bearer challenge with an anonymous token. The
// caller closes the response body. Only network failures are errors: any
// HTTP status is returned, except a 401 that persists after a token.
func (c *Client) do(ctx context.Context, rq request) (*http.Response, error) {
	u := rq.url
	if u == nil {
		var err error
		u, err = url.Parse(c.baseURL(rq.ref.Registry) + "/v2/" + rq.ref.Repository + "/" + rq.path)
		if err != nil {
			return nil, fmt.Errorf("building the URL for %s: %w", rq.ref.Name(), err)
		}
	}
	scope := "repository:" + rq.ref.Repository + ":pull"
	if rq.push {
		scope += ",push"
	}
	key := rq.ref.Registry + " " + scope
	// Only send the token to the registry itself, not to a storage
	// backend an upload Location may point at.
	sendToken := u.Host == apiHost(rq.ref.Registry)

	c.mu.Lock()
	token := c.tokens[key]
	c.mu.Unlock()
	if !sendToken {
		token = ""
	}
	resp, err := c.send(ctx, rq, u, token)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !sendToken {
		return resp, err
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	drain(resp)
	token, err = c.fetchToken(ctx, rq.ref.Registry, challenge, scope)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.tokens == nil {
		c.tokens = make(map[string]string)
	}
	c.tokens[key] = token
	c.mu.Unlock()
	resp, err = c.send(ctx, rq, u, token)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		defer drain(resp)
		return nil, fmt.Errorf("registry %s refused anonymous %s access to %s even with a token: %s",
			rq.ref.Registry, action(rq.push), rq.ref.Repository, errorDetail(resp))
	}
	return resp, nil
}

func action(push bool) string {
	if push {
		return "push"
	}
	return "pull"
}

// send sends one HTTP request; a network failure says the registry could not be reached.
func (c *Client) send(ctx context.Context, rq request, u *url.URL, token string) (*http.Response, error) {
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("building a request to registry %s: %w", rq.ref.Registry, err)
	}
	for k, v := range rq.header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("request to registry %s was cancelled: %w", rq.ref.Registry, err)
		}
		return nil, fmt.Errorf("registry %s could not be reached: %w", rq.ref.Registry, err)
	}
	return resp, nil
}

// fetchToken answers a Bearer challenge with an anonymous token.
func (c *Client) fetchToken(ctx context.Context, registry, challenge, scope string) (string, error) {
	scheme, params := parseChallenge(challenge)
	if !strings.EqualFold(scheme, "bearer") {
		if challenge == "" {
			challenge = "no WWW-Authenticate header"
		}
		return "", fmt.Errorf("registry %s requires a login (%s): only registries that allow anonymous access are supported", registry, challenge)
	}
	realm, err := url.Parse(params["realm"])
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.Host == "" {
		return "", fmt.Errorf("registry %s sent a Bearer challenge with an unusable realm %q", registry, params["realm"])
	}
	q := realm.Query()
	if s := params["service"]; s != "" {
		q.Set("service", s)
	}
	if s := params["scope"]; s != "" {
		scope = s
	}
	q.Set("scope", scope)
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", fmt.Errorf("building a token request for registry %s: %w", registry, err)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return "", fmt.Errorf("token server %s of registry %s could not be reached: %w", realm.Host, registry, err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token server %s of registry %s refused an anonymous token for %q: %s",
			realm.Host, registry, scope, errorDetail(resp))
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxManifest)).Decode(&tr); err != nil {
		return "", fmt.Errorf("token server %s of registry %s sent an unreadable answer: %w", realm.Host, registry, err)
	}
	if tr.Token == "" {
		tr.Token = tr.AccessToken
	}
	if tr.Token == "" {
		return "", fmt.Errorf("token server %s of registry %s sent no token", realm.Host, registry)
	}
	return tr.Token, nil
}

// parseChallenge splits `Bearer realm="...",service="...",scope="..."`
// into its scheme and parameters. Quoted values may contain commas.
func parseChallenge(h string) (scheme string, params map[string]string) {
	params = make(map[string]string)
	h = strings.TrimSpace(h)
	sp := strings.IndexByte(h, ' ')
	if sp < 0 {
		return h, params
	}
	scheme, rest := h[:sp], h[sp+1:]
	for {
		rest = strings.TrimLeft(rest, " ,")
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return scheme, params
		}
		key := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = rest[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
			}
			val, rest = b.String(), rest[min(i+1, len(rest)):]
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		params[key] = val
	}
}

// drain discards the rest of a response body (so the connection is
// reused) and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
}

// registryErrors is the error body of the distribution API.
type registryErrors struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// errorDetail reads an error response and summarises it: the HTTP status
// and the registry's error codes and messages, if any.
func errorDetail(resp *http.Response) string {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	detail := "HTTP " + resp.Status
	var re registryErrors
	if json.Unmarshal(body, &re) == nil && len(re.Errors) > 0 {
		var parts []string
		for _, e := range re.Errors {
			parts = append(parts, strings.TrimSpace(e.Code+" "+e.Message))
		}
		return detail + ": " + strings.Join(parts, "; ")
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		if len(s) > 200 {
			s = s[:200] + "..."
		}
		detail += ": " + s
	}
	return detail
}

// digestOf returns "sha256:<hex>" of b.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// readLimited reads a body of at most limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// notFound builds an ErrNotFound naming what is missing.
func notFound(r Ref) error {
	if r.Digest != "" {
		return &refError{msg: fmt.Sprintf("digest %s does not exist in %s", r.Digest, r.Name()), err: ErrNotFound}
	}
	return &refError{msg: fmt.Sprintf("tag %s does not exist in %s", r.Tag, r.Name()), err: ErrNotFound}
}

// refError is an error with its own message that wraps a sentinel.
type refError struct {
	msg string
	err error
}

func (e *refError) Error() string { return e.msg }
func (e *refError) Unwrap() error { return e.err }

// getManifest fetches the manifest r names (by digest if it has one, else
// by tag). With a digest, the body must hash to it. It returns the body,
// its media type and its digest.
func (c *Client) getManifest(ctx context.Context, r Ref) (body []byte, mediaType, digest string, err error) {
	reference := r.Tag
	if r.Digest != "" {
		reference = r.Digest
	}
	resp, err := c.do(ctx, request{
		method: http.MethodGet, ref: r, path: "manifests/" + reference,
		header: http.Header{"Accept": {manifestAccept}},
	})
	if err != nil {
		return nil, "", "", err
	}
	defer drain(resp)
	if resp.StatusCode == http.StatusNotFound {
		return nil, "", "", notFound(r)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", "", fmt.Errorf("fetching manifest %s: registry answered %s", r, errorDetail(resp))
	}
	body, err = readLimited(resp.Body, maxManifest)
	if err != nil {
		return nil, "", "", fmt.Errorf("reading manifest %s: %w", r, err)
	}
	digest = digestOf(body)
	if r.Digest != "" && digest != r.Digest {
		return nil, "", "", fmt.Errorf("registry %s returned a manifest for %s whose sha256 is %s: the registry is broken or tampered with",
			r.Registry, r, digest)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); r.Digest == "" && h != "" && h != digest && strings.HasPrefix(h, "sha256:") {
		return nil, "", "", fmt.Errorf("registry %s says manifest %s has digest %s but its sha256 is %s", r.Registry, r, h, digest)
	}
	return body, resp.Header.Get("Content-Type"), digest, nil
}

// Resolve returns the digest of the manifest r names. With a digest (a
// tag alongside is ignored, as docker does), it fetches the manifest by
// digest and checks that it exists and hashes to that digest. With a tag,
// it returns the registry's Docker-Content-Digest, or the sha256 of the
// manifest when the registry sends none. A missing tag, digest or
// repository gives an error wrapping ErrNotFound.
func (c *Client) Resolve(ctx context.Context, r Ref) (string, error) {
	if err := r.check(false); err != nil {
		return "", err
	}
	if r.Digest == "" {
		resp, err := c.do(ctx, request{
			method: http.MethodHead, ref: r, path: "manifests/" + r.Tag,
			header: http.Header{"Accept": {manifestAccept}},
		})
		if err != nil {
			return "", err
		}
		drain(resp)
		switch d := resp.Header.Get("Docker-Content-Digest"); {
		case resp.StatusCode == http.StatusNotFound:
			return "", notFound(r)
		case resp.StatusCode == http.StatusOK && digestRE.MatchString(d):
			return d, nil
		}
		// No usable answer to HEAD: fetch the manifest and hash it.
	}
	_, _, digest, err := c.getManifest(ctx, r)
	if err != nil {
		return "", err
	}
	return digest, nil
}

// Exists reports whether the manifest r names exists. It is Resolve
// without the digest: a missing image is (false, nil), other failures are
// errors.
func (c *Client) Exists(ctx context.Context, r Ref) (bool, error) {
	_, err := c.Resolve(ctx, r)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// getBlob fetches a blob of at most limit bytes. The caller checks its digest.
func (c *Client) getBlob(ctx context.Context, r Ref, digest string, limit int64) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, ref: r, path: "blobs/" + digest})
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if resp.StatusCode == http.StatusNotFound {
		return nil, &refError{msg: fmt.Sprintf("blob %s does not exist in %s", digest, r.Name()), err: ErrNotFound}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching blob %s from %s: registry answered %s", digest, r.Name(), errorDetail(resp))
	}
	b, err := readLimited(resp.Body, limit)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s from %s: %w", digest, r.Name(), err)
	}
	return b, nil
}
