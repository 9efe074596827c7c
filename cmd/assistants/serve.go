package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/assistants-go/assistants/server"
)

// serveConfig holds the serve command's flags.
type serveConfig struct {
	addr      string
	apiKey    string
	stepDelay time.Duration
	logLevel  string
	backend   *server.ChatModel // nil: the scripted model
}

func serveFlags(args []string, out io.Writer) (*serveConfig, []server.Option, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(out)
	c := &serveConfig{}
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free port)")
	fs.StringVar(&c.apiKey, "api-key", "", "turn auth on with this key (default: off; prefer --api-key-env)")
	apiKeyEnv := fs.String("api-key-env", "", "turn auth on with the key in this environment variable")
	fs.DurationVar(&c.stepDelay, "step-delay", 50*time.Millisecond, "delay before each run state change (0 = immediate)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	bf := addBackendFlags(fs, os.Getenv)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if *apiKeyEnv != "" {
		c.apiKey = os.Getenv(*apiKeyEnv)
		if c.apiKey == "" {
			return nil, nil, fmt.Errorf("--api-key-env %s: the variable is empty", *apiKeyEnv)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	opts := []server.Option{
		server.WithStepDelay(c.stepDelay),
		server.WithLogger(logger),
	}
	var err error
	if c.backend, err = bf.model(os.Getenv, logger); err != nil {
		return nil, nil, err
	}
	if c.backend != nil {
		opts = append(opts, server.WithModel(c.backend))
	}
	if c.apiKey != "" {
		opts = append(opts, server.WithAPIKeys(c.apiKey))
	}
	return c, opts, nil
}

func serve(ctx context.Context, args []string, out io.Writer) error {
	c, opts, err := serveFlags(args, out)
	if err != nil {
		return err
	}
	srv := server.New(opts...)
	defer srv.Close()
	bindBackend(c.backend, srv)
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(out, "listening on http://%s/v1\n", ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintln(out, "server stopped")
	return nil
}
