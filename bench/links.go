package main

import "context"

// linkScenarios measures crawls that discover a million URLs.
func linkScenarios(ctx context.Context, cfg config) ([]row, error) {
	return nil, nil
}
