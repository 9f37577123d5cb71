package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
	"github.com/cronium/executor/packages"
)

func newImagesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "images", Short: "Build and list the runtime images"}
	var mirror string
	build := &cobra.Command{
		Use:   "build [bash|python|node|builder]...",
		Short: "Build runtime images and the package builder offline from the Debian mirror (skips images that are up to date)",
		Long: `Build a minimal Debian root file system per runtime with mmdebstrap and
import it into the engine. No registry is needed. The tag is a hash of the
recipe, so an unchanged image is not rebuilt. Needs root and mmdebstrap.`,
		RunE: func(c *cobra.Command, args []string) error {
			var langs []cronium.Language
			withBuilder := len(args) == 0
			for _, a := range args {
				if a == "builder" {
					withBuilder = true
					continue
				}
				l, err := cronium.ParseLanguage("image", a)
				if err != nil {
					return usage(err)
				}
				langs = append(langs, l)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			eng, err := g.engine(ctx)
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			defer eng.Close()
			b := &images.Builder{Engine: eng, Mirror: mirror, Progress: c.ErrOrStderr()}
			if len(langs) > 0 || len(args) == 0 {
				if _, err := b.Build(ctx, langs...); err != nil {
					return err
				}
			}
			if withBuilder {
				_, err = b.Ensure(ctx, images.BuilderRecipe)
			}
			return err
		},
	}
	build.Flags().StringVar(&mirror, "mirror", "", "Debian mirror URL or apt sources file (default: this host's apt sources)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the runtime images, their tags and whether they are built",
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := context.Background()
			eng, err := g.engine(ctx)
			if err != nil {
				return &exitError{code: 125, err: err}
			}
			defer eng.Close()
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
			layered, err := (&packages.Builder{Engine: eng}).List(ctx)
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
	c.AddCommand(build, list)
	return c
}
