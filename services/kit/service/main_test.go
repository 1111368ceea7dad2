package service

import (
	"context"
	"errors"
	"testing"
)

type mainTestConfig struct {
	Port int `yaml:"port"`
}

func (c mainTestConfig) Validate() error {
	if c.Port <= 0 {
		return errors.New("port: must be positive")
	}
	return nil
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		name     string
		argv     []string
		wantCode int
		wantRun  int // port runFn saw, 0 when it must not run
	}{
		{"runs with defaults", nil, 0, 8080},
		{"runs with a flag", []string{"-port", "9000"}, 0, 9000},
		{"validate only", []string{"validate", "-port", "9000"}, 0, 0},
		{"invalid value", []string{"-port", "-1"}, 2, 0},
		{"invalid value in validate", []string{"validate", "-port", "0"}, 2, 0},
		{"wrong type", []string{"-port", "many"}, 2, 0},
		{"unknown flag", []string{"-nope", "1"}, 2, 0},
		{"unknown subcommand", []string{"serve"}, 2, 0},
		{"help", []string{"-h"}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ran := 0
			code := dispatch("unit", mainTestConfig{Port: 8080}, (*mainTestConfig).Validate, tc.argv, func(_ context.Context, c mainTestConfig) error {
				ran = c.Port
				return nil
			})
			if code != tc.wantCode || ran != tc.wantRun {
				t.Errorf("exit %d, ran with port %d; want exit %d, port %d", code, ran, tc.wantCode, tc.wantRun)
			}
		})
	}
}
