// Package deploy holds no code. Its tests check docker-compose.yml and the
// Dockerfile against the programs they run, because CI has no Docker
// engine to start them: the worker's environment names only variables the
// worker reads, its defaults match the keys the sandbox service writes,
// Redis keeps and never evicts the queue, and the image builds every
// program the stack starts.
package deploy
