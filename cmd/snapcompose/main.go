// Command snapcompose composes test and staging environments from snapshot
// sources: templates from a catalog and captures of live hosts.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
)

func main() {
	// compose-go warns through the global logrus logger (for example about an
	// obsolete "version:" key); the plan is the output, so keep stderr for
	// errors.
	logrus.SetOutput(io.Discard)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	os.Exit(m.Run(ctx, os.Args[1:]))
}
