// Command ferretdb runs an embedded FerretDB 1.x (SQLite backend) for local
// development and CI, where neither Docker nor a MongoDB binary is available.
//
// The upstream cmd/ferretdb cannot be installed with `go install` because the
// published module lacks build/version/version.txt; the embeddable package
// does not need it.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("sqlite-dir", "data/", "directory for the SQLite databases")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	indexInterval := flag.Duration("id-index-interval", 500*time.Millisecond,
		"how often new collections get the _id index SQLite can use (see idindex.go)")
	synchronous := flag.String("sqlite-synchronous", "normal",
		"SQLite's synchronous pragma: normal (WAL: durable across process crashes, a power "+
			"loss may lose the last commits) or full (fsync on every commit)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		slog.Error("bad -log-level", "error", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		logger.Error("cannot create data directory", "error", err)
		os.Exit(1)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dataDir + "/?_pragma=synchronous(" + *synchronous + ")",
	})
	if err != nil {
		logger.Error("cannot start FerretDB", "error", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	go keepIDIndexes(ctx, *dataDir, *indexInterval, logger)

	logger.Warn("FerretDB listening", "addr", *listen, "data", *dataDir)
	if err := f.Run(ctx); err != nil {
		logger.Error("FerretDB stopped with an error", "error", err)
		os.Exit(1)
	}
}
