package docker

import "testing"

// Podman names local images localhost/..., and those it tagged or
// committed docker.io/...: cronium reads them as it wrote them.
func TestPodmanImageNames(t *testing.T) {
	for in, want := range map[string]string{
		"localhost/cronium/runtime-bash:1":       "cronium/runtime-bash:1",
		"docker.io/cronium/pkgs-bash:abc":        "cronium/pkgs-bash:abc",
		"docker.io/library/debian:12":            "debian:12",
		"registry.example:5000/team/tool@sha256": "registry.example:5000/team/tool@sha256",
	} {
		if got := podman.imageName(in); got != want {
			t.Errorf("podman name %q read as %q, want %q", in, got, want)
		}
		if got := dockerEngine.imageName(in); got != in {
			t.Errorf("docker name %q changed to %q", in, got)
		}
	}
}
