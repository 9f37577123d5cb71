package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/packages"
)

func newImagesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "images", Short: "Build and list the runtime images"}
	var mirror, listOutput string
	build := &cobra.Command{
		Use:   "build [bash|python|node|builder]...",
		Short: "Build runtime images and the package builder offline from the Debian mirror (skips images that are up to date)",
		Long: `Build a minimal Debian root file system per runtime with mmdebstrap and
import it into the engine. No registry is needed. The tag is a hash of the
recipe, so an unchanged image is not rebuilt. Needs root and mmdebstrap.`,
		RunE: func(c *cobra.Command, args []string) error {
			recipes, err := recipesOf(args)
			if err != nil {
				return err
			}
			return withEngine(g, func(ctx context.Context, eng cronium.ImageStore) error {
				b := &images.Builder{Engine: eng, Mirror: mirror, Progress: c.ErrOrStderr()}
				for _, r := range recipes {
					if _, err := b.Ensure(ctx, r); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	build.Flags().StringVar(&mirror, "mirror", "", "Debian mirror URL or apt sources file (default: this host's apt sources)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the runtime images, their tags and whether they are built",
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkOutput(listOutput); err != nil {
				return err
			}
			ctx := context.Background()
			eng, err := g.engineWithImages(ctx)
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			defer eng.Close()
			if listOutput == "json" || listOutput == "yaml" {
				return printImages(ctx, c.OutOrStdout(), listOutput, eng)
			}
			w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "LANGUAGE\tIMAGE\tBUILT\tSIZE")
			refs := images.Refs()
			langs := make([]string, 0, len(refs))
			for l := range refs {
				langs = append(langs, string(l))
			}
			sort.Strings(langs)
			for _, l := range langs {
				ref := refs[cronium.Language(l)]
				size, err := eng.ImageSize(ctx, ref)
				built, sz := "yes", human(size)
				if err != nil {
					built, sz = "no", "-"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", l, ref, built, sz)
			}
			size, err := eng.ImageSize(ctx, images.BuilderRecipe.Ref())
			built, sz := "yes", human(size)
			if err != nil {
				built, sz = "no", "-"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", "(builder)", images.BuilderRecipe.Ref(), built, sz)
			if err := w.Flush(); err != nil {
				return err
			}
			// The package layers events declared.
			layered, err := (&packages.Builder{Engine: eng, Namespace: images.Repository + "/pkgs-"}).List(ctx)
			if err != nil {
				return err
			}
			sort.Slice(layered, func(i, j int) bool { return layered[i].Lock.Image < layered[j].Lock.Image })
			fmt.Fprintln(c.OutOrStdout())
			w = tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PACKAGE IMAGE\tBASE\tPACKAGES\tSIZE\tBUILT")
			for _, li := range layered {
				l := li.Lock
				all := append(append(append([]string{}, l.Apt...), l.Python...), l.Node...)
				list := strings.Join(all, " ")
				if len(list) > 60 {
					list = list[:57] + "..."
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", l.Image, l.Base, list, human(li.Size), l.BuiltAt.Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
	list.Flags().StringVarP(&listOutput, "output", "o", "table", "table, json or yaml")
	var updateMirror string
	update := &cobra.Command{
		Use:   "update [bash|python|node|builder]...",
		Short: "Rebuild the runtime images from the mirror and move to the new ones where packages changed",
		Long: `Rebuild each runtime image (all, and the package builder, when none is
named) from the Debian mirror beside the current one, and compare their
packages. Where the mirror had changes (a security update), the image's
tag moves to the new image and the old one keeps a "-prev-<date>" tag.

Executions already running keep the image they started on. A running
server notices the move within seconds: new runs and new warm sandboxes
use the new image, idle warm sandboxes of the old one are removed, and
every package layer built on the old image is rebuilt on the new one and
recorded on its event (an event whose rebuild fails keeps its old layer;
the server logs why). The old image is removed once no container uses it.
An image whose packages did not change is left as it is.
Needs root and mmdebstrap, like build.`,
		RunE: func(c *cobra.Command, args []string) error {
			recipes, err := recipesOf(args)
			if err != nil {
				return err
			}
			return withEngine(g, func(ctx context.Context, eng cronium.ImageStore) error {
				// A mistyped --image-repo would build a whole new set.
				if have, err := eng.ImageTags(ctx, images.Repository+"/"); err != nil {
					return err
				} else if len(have) == 0 {
					return cronium.Invalid("image-repo", images.Repository, "holds no images on this engine: nothing to update (check --image-repo / CRONIUM_IMAGE_REPO, or build them with `cronium images build`)")
				}
				b := &images.Builder{Engine: eng, Mirror: updateMirror, Progress: c.ErrOrStderr()}
				out := c.OutOrStdout()
				for _, r := range recipes {
					ch, err := b.Update(ctx, r)
					if err != nil {
						return err
					}
					switch {
					case ch.Built:
						fmt.Fprintf(out, "%s: built (there was none)\n", ch.Ref)
					case !ch.Updated:
						fmt.Fprintf(out, "%s: up to date\n", ch.Ref)
					default:
						fmt.Fprintf(out, "%s: updated %s -> %s (previous kept as %s until nothing uses it)\n", ch.Ref, images.ShortID(ch.OldID), images.ShortID(ch.NewID), ch.Previous)
						for _, d := range ch.Diff {
							fmt.Fprintf(out, "  %s\n", d)
						}
					}
				}
				return nil
			})
		},
	}
	update.Flags().StringVar(&updateMirror, "mirror", "", "Debian mirror URL or apt sources file (default: this host's apt sources)")
	c.AddCommand(build, list, update)
	return c
}

// withEngine runs f with the engine, under a context that an interrupt cancels.
func withEngine(g *globals, f func(ctx context.Context, img cronium.ImageStore) error) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	eng, err := g.engine(ctx)
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	defer eng.Close()
	img, err := imageStore(eng)
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	return f(ctx, img)
}

// recipesOf maps image names (bash, python, node, builder) to recipes:
// every runtime image and the builder when there are none.
func recipesOf(args []string) ([]images.Recipe, error) {
	if len(args) == 0 {
		args = []string{"bash", "python", "node", "builder"}
	}
	var out []images.Recipe
	seen := map[string]bool{}
	for _, a := range args {
		if seen[a] {
			continue
		}
		seen[a] = true
		if a == "builder" {
			out = append(out, images.BuilderRecipe)
			continue
		}
		l, err := cronium.ParseLanguage("image", a)
		if err != nil {
			return nil, usage(cronium.Invalid("image", a, "is not an image: want bash, python, node or builder"))
		}
		out = append(out, images.Recipes[l])
	}
	return out, nil
}

// printImages prints the runtime images and package layers as data:
// {"items": [{language, image, built, size_bytes}], "layers": [...]}.
func printImages(ctx context.Context, w io.Writer, format string, eng engineImages) error {
	type item struct {
		Language string `json:"language"`
		Image    string `json:"image"`
		Built    bool   `json:"built"`
		Size     int64  `json:"size_bytes,omitempty"`
	}
	out := struct {
		Items  []item                 `json:"items"`
		Layers []cronium.LayeredImage `json:"layers"`
	}{Items: []item{}}
	refs := images.Refs()
	for _, l := range slices.Sorted(maps.Keys(refs)) {
		size, err := eng.ImageSize(ctx, refs[l])
		out.Items = append(out.Items, item{string(l), refs[l], err == nil, size})
	}
	size, err := eng.ImageSize(ctx, images.BuilderRecipe.Ref())
	out.Items = append(out.Items, item{"(builder)", images.BuilderRecipe.Ref(), err == nil, size})
	layered, err := (&packages.Builder{Engine: eng, Namespace: images.Repository + "/pkgs-"}).List(ctx)
	if err != nil {
		return err
	}
	out.Layers = append([]cronium.LayeredImage{}, layered...)
	printData(w, format, out)
	return nil
}
