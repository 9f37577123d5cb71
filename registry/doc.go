// Package registry is Cronium's client for OCI / Docker v2 image registries.
//
// It parses image references that name their registry explicitly
// (ParseRef), resolves tags to digests and checks that digests exist
// (Client.Resolve, Client.Exists), and verifies cosign signatures offline
// with the operator's public keys (Client.VerifyCosign). For tests it can
// also push synthetic images (Client.PushImage) and sign them exactly the
// way `cosign sign --key` does (Client.SignCosign).
//
// Only the standard library is used. Access is anonymous: registries that
// need no login, and registries that use the Docker token flow with
// anonymous tokens (a 401 with a Bearer challenge), are supported.
//
// # Cosign signatures
//
// Signatures use cosign's "simple signing" layout (cosign 1.x and 2.x,
// not the newer bundle format): an OCI image manifest tagged
// sha256-<hex>.sig in the image's repository. Each layer is a payload blob
// of media type application/vnd.dev.cosign.simplesigning.v1+json, and the
// layer's annotation dev.cosignproject.cosign/signature holds the base64
// signature of that blob. The payload names the image:
//
//	{"critical":{"identity":{"docker-reference":"<registry>/<repo>"},
//	 "image":{"docker-manifest-digest":"sha256:..."},
//	 "type":"cosign container image signature"},"optional":null}
//
// ECDSA P-256 signatures are ASN.1 DER over the payload's SHA-256; Ed25519
// signatures are over the payload itself. No transparency log or
// certificate is consulted: verification is offline, by key only.
package registry
