// containerd-stargz-grpc for the nydus-top sandbox node: the stargz snapshotter library's service,
// served as containerd's proxy snapshotter over a unix socket, with its Prometheus metrics over a
// second unix socket. Debian packages the library but not upstream's daemon; this is our own small
// main. Built in GOPATH mode from Debian's Go sources by scripts/sandbox/stargz.py.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/log"
	"github.com/containerd/stargz-snapshotter/fs"
	"github.com/containerd/stargz-snapshotter/metadata/memory"
	"github.com/containerd/stargz-snapshotter/service"
	metrics "github.com/docker/go-metrics"
	"github.com/pelletier/go-toml"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

func main() {
	address := flag.String("address", "", "unix socket to serve containerd's snapshots API on")
	root := flag.String("root", "", "directory holding the snapshotter's state")
	configPath := flag.String("config", "", "TOML configuration (the library's service.Config)")
	metricsAddress := flag.String("metrics-socket", "", "unix socket to serve Prometheus metrics on (optional)")
	logLevel := flag.String("log-level", "info", "logrus level: debug, info, warn, error")
	flag.Parse()
	if err := run(*address, *root, *configPath, *metricsAddress, *logLevel); err != nil {
		fmt.Fprintf(os.Stderr, "containerd-stargz-grpc: %v\n", err)
		os.Exit(1)
	}
}

func run(address, root, configPath, metricsAddress, logLevel string) error {
	if address == "" || root == "" {
		return fmt.Errorf("-address and -root are required")
	}
	level, err := logrus.ParseLevel(logLevel)
	if err != nil {
		return err
	}
	logrus.SetLevel(level)
	logrus.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	ctx := log.WithLogger(context.Background(), log.L)

	var config service.Config
	if configPath != "" {
		tree, err := toml.LoadFile(configPath)
		if err != nil {
			return fmt.Errorf("config %s: %w", configPath, err)
		}
		if err := tree.Unmarshal(&config); err != nil {
			return fmt.Errorf("config %s: %w", configPath, err)
		}
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	snapshotter, err := service.NewStargzSnapshotterService(ctx, root, &config,
		service.WithFilesystemOptions(fs.WithMetadataStore(memory.NewReader)))
	if err != nil {
		return fmt.Errorf("snapshotter: %w", err)
	}
	defer snapshotter.Close()

	server := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(server, snapshotservice.FromSnapshotter(snapshotter))
	listener, err := listenUnix(address)
	if err != nil {
		return err
	}
	if metricsAddress != "" {
		metricsListener, err := listenUnix(metricsAddress)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", metrics.Handler())
		go func() { _ = http.Serve(metricsListener, mux) }()
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		server.GracefulStop()
	}()
	log.G(ctx).WithField("address", address).Info("serving stargz snapshotter")
	return server.Serve(listener)
}

func listenUnix(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return net.Listen("unix", path)
}
