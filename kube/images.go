package kube

import (
	"context"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cronium "github.com/cronium/executor"
)

// Images implements cronium.Engine: what the node's container runtime
// holds, as the node's status reports it. Images are built with Docker or
// Podman and imported into the node (scripts/k8s-cluster.sh import), or
// pulled by the node from a registry: this store only reads.
func (e *Engine) Images() cronium.ImageStore { return images{e} }

type images struct{ e *Engine }

// fullRef is ref as the container runtime names it.
func fullRef(ref string) string {
	if strings.HasPrefix(ref, "sha256:") {
		return ref
	}
	name := ref
	if i := strings.IndexAny(ref, "@"); i >= 0 {
		name = ref[:i]
	}
	if !strings.Contains(name, ":") && !strings.Contains(ref, "@") {
		ref += ":latest"
	}
	first, _, found := strings.Cut(ref, "/")
	if !found || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		if !found {
			ref = "library/" + ref
		}
		ref = "docker.io/" + ref
	}
	return ref
}

// nodeImages are the names of the node's images, with their sizes.
func (s images) nodeImages(ctx context.Context) (map[string]int64, error) {
	n, err := s.e.cs.CoreV1().Nodes().Get(ctx, s.e.o.Node, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read the images of node %s: %w", s.e.o.Node, err)
	}
	out := map[string]int64{}
	for _, im := range n.Status.Images {
		for _, name := range im.Names {
			out[name] = im.SizeBytes
		}
	}
	return out, nil
}

func (s images) ImageExists(ctx context.Context, ref string) (bool, error) {
	have, err := s.nodeImages(ctx)
	if err != nil {
		return false, err
	}
	_, ok := have[fullRef(ref)]
	return ok, nil
}

// ImageID returns ref itself: the node's status does not give image IDs,
// and a Pod names its image by reference.
func (s images) ImageID(ctx context.Context, ref string) (string, error) {
	ok, err := s.ImageExists(ctx, ref)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("%w: image %s is not on node %s: import it (scripts/k8s-cluster.sh import %s)", cronium.ErrNotFound, ref, s.e.o.Node, ref)
	}
	return ref, nil
}

func (s images) ImageSize(ctx context.Context, ref string) (int64, error) {
	have, err := s.nodeImages(ctx)
	if err != nil {
		return 0, err
	}
	size, ok := have[fullRef(ref)]
	if !ok {
		return 0, fmt.Errorf("%w: image %s is not on node %s", cronium.ErrNotFound, ref, s.e.o.Node)
	}
	return size, nil
}

func (s images) ImageTags(ctx context.Context, prefix string) (map[string]string, error) {
	have, err := s.nodeImages(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for name := range have {
		if n := imageName(name); !strings.Contains(n, "@") && strings.HasPrefix(n, prefix) {
			out[n] = n
		}
	}
	return out, nil
}

func unsupported(what string) error {
	return fmt.Errorf("%w: the kubernetes engine cannot %s: do it with Docker or Podman and import the image into the node (scripts/k8s-cluster.sh import REF)", cronium.ErrUnsupported, what)
}

func (images) ImageLayers(context.Context, string) ([]string, error) {
	return nil, unsupported("read image layers")
}
func (images) TagImage(context.Context, string, string) error { return unsupported("tag images") }
func (images) RemoveImage(context.Context, string) error      { return unsupported("remove images") }
func (images) ImportImage(context.Context, io.Reader, string, []string) error {
	return unsupported("import images")
}
func (images) CommitLayer(context.Context, string, io.Reader, string, []string) error {
	return unsupported("build package layers")
}
func (images) ReadImageFile(context.Context, string, string, int64) ([]byte, error) {
	return nil, unsupported("read files of images")
}
func (images) ImageHasFile(context.Context, string, ...string) (string, error) {
	return "", unsupported("look into images")
}
func (images) FindImages(context.Context, string, string) ([]cronium.ImageInfo, error) {
	return nil, unsupported("find images by label")
}
func (images) PullImage(context.Context, string) error { return unsupported("pull images") }
