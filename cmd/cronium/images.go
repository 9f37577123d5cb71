package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	cronium "github.com/cronium/executor"
	"github.com/cronium/executor/images"
)

func newImagesCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "images", Short: "Build and list the runtime images"}
	var mirror string
	build := &cobra.Command{
		Use:   "build [bash|python|node]...",
		Short: "Build runtime images offline from the Debian mirror (skips images that are up to date)",
		Long: `Build a minimal Debian root file system per runtime with mmdebstrap and
import it into the engine. No registry is needed. The tag is a hash of the
recipe, so an unchanged image is not rebuilt. Needs root and mmdebstrap.`,
		RunE: func(c *cobra.Command, args []string) error {
			var langs []cronium.Language
			for _, a := range args {
				l, err := cronium.ParseLanguage("language", a)
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
			_, err = b.Build(ctx, langs...)
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
			return w.Flush()
		},
	}
	c.AddCommand(build, list)
	return c
}
