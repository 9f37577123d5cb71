package main

import "github.com/spf13/cobra"

func newBenchCmd(g *globals) *cobra.Command { return &cobra.Command{Use: "bench", Hidden: true} }
