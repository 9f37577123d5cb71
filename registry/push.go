package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// pushBlob uploads data to r's repository unless it is already there, and
// returns its digest. It uses the monolithic upload: POST
// /v2/<name>/blobs/uploads/, then PUT <Location>?digest=<digest>.
func (c *Client) pushBlob(ctx context.Context, r Ref, data []byte) (string, error) {
	digest := digestOf(data)
	resp, err := c.do(ctx, request{method: http.MethodHead, ref: r, path: "blobs/" + digest, push: true})
	if err != nil {
		return "", err
	}
	drain(resp)
	if resp.StatusCode == http.StatusOK {
		return digest, nil
	}

	resp, err = c.do(ctx, request{method: http.MethodPost, ref: r, path: "blobs/uploads/", push: true})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		defer drain(resp)
		return "", fmt.Errorf("starting a blob upload to %s: registry answered %s", r.Name(), errorDetail(resp))
	}
	drain(resp)
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("starting a blob upload to %s: registry sent no Location", r.Name())
	}
	// Location may be relative to the request URL or absolute.
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("starting a blob upload to %s: bad Location %q: %w", r.Name(), loc, err)
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()

	resp, err = c.do(ctx, request{
		method: http.MethodPut, ref: r, url: u, push: true, body: data,
		header: http.Header{"Content-Type": {"application/octet-stream"}},
	})
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("uploading blob %s to %s: registry answered %s", digest, r.Name(), errorDetail(resp))
	}
	return digest, nil
}

// pushManifest PUTs a manifest under r's tag (or digest) and returns its digest.
func (c *Client) pushManifest(ctx context.Context, r Ref, mediaType string, body []byte) (string, error) {
	reference := r.Tag
	if reference == "" {
		reference = r.Digest
	}
	resp, err := c.do(ctx, request{
		method: http.MethodPut, ref: r, path: "manifests/" + reference, push: true, body: body,
		header: http.Header{"Content-Type": {mediaType}},
	})
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("pushing manifest %s: registry answered %s", r, errorDetail(resp))
	}
	return digestOf(body), nil
}

// PushImage pushes a Docker schema 2 image to r's repository under r's tag
// and returns the manifest's digest. It is meant for tests: it makes
// synthetic images without a container engine. Layers are gzip-compressed
// tar files. A nil config gets a minimal linux/amd64 config whose diff_ids
// are computed from the layers.
func (c *Client) PushImage(ctx context.Context, r Ref, config []byte, layers [][]byte) (string, error) {
	if err := r.check(false); err != nil {
		return "", err
	}
	if r.Tag == "" || r.Digest != "" {
		return "", fmt.Errorf("pushing image %s: give a tag and no digest", r)
	}
	if config == nil {
		var err error
		if config, err = minimalConfig(layers); err != nil {
			return "", fmt.Errorf("pushing image %s: %w", r, err)
		}
	}
	m := manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeDockerManifest,
		Config:        descriptor{MediaType: MediaTypeDockerConfig, Size: int64(len(config)), Digest: digestOf(config)},
		Layers:        []descriptor{},
	}
	if _, err := c.pushBlob(ctx, r, config); err != nil {
		return "", fmt.Errorf("pushing image %s: %w", r, err)
	}
	for _, l := range layers {
		d, err := c.pushBlob(ctx, r, l)
		if err != nil {
			return "", fmt.Errorf("pushing image %s: %w", r, err)
		}
		m.Layers = append(m.Layers, descriptor{MediaType: MediaTypeDockerLayer, Size: int64(len(l)), Digest: d})
	}
	body, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("pushing image %s: encoding the manifest: %w", r, err)
	}
	digest, err := c.pushManifest(ctx, r, MediaTypeDockerManifest, body)
	if err != nil {
		return "", fmt.Errorf("pushing image %s: %w", r, err)
	}
	return digest, nil
}

// minimalConfig builds an image config for gzip-compressed tar layers.
func minimalConfig(layers [][]byte) ([]byte, error) {
	diffIDs := make([]string, 0, len(layers))
	for i, l := range layers {
		zr, err := gzip.NewReader(bytes.NewReader(l))
		if err != nil {
			return nil, fmt.Errorf("layer %d is not gzip-compressed: %w", i+1, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, zr)
		if err == nil {
			err = zr.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("layer %d: bad gzip data: %w", i+1, err)
		}
		diffIDs = append(diffIDs, "sha256:"+hex.EncodeToString(h.Sum(nil)))
	}
	type rootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	}
	return json.Marshal(struct {
		Architecture string         `json:"architecture"`
		OS           string         `json:"os"`
		RootFS       rootFS         `json:"rootfs"`
		Config       map[string]any `json:"config"`
	}{"amd64", "linux", rootFS{"layers", diffIDs}, map[string]any{}})
}
