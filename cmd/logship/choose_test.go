package main

import (
	"errors"
	"testing"
)

func TestChoose(t *testing.T) {
	abc := []named[int]{{"a", 1}, {"b", 2}, {"c", 3}}
	for _, tc := range []struct {
		s       string
		choices []named[int]
		want    int
		err     string // the usage error; "" for none
	}{
		{"a", abc, 1, ""},
		{"c", abc, 3, ""},
		{"d", abc, 0, `--x "d": want a, b or c`},
		{"", abc, 0, `--x "": want a, b or c`},
		{"b", abc[:2], 2, ""},
		{"c", abc[:2], 0, `--x "c": want a or b`},
		{"b", abc[:1], 0, `--x "b": want a`},
	} {
		got, err := choose("x", tc.s, tc.choices)
		var ue usageError
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("choose(%q) = %d, %v; want %d", tc.s, got, err, tc.want)
		case tc.err != "" && (!errors.As(err, &ue) || err.Error() != tc.err):
			t.Errorf("choose(%q) error %v; want the usage error %q", tc.s, err, tc.err)
		}
	}
}

func TestParseCompress(t *testing.T) {
	for _, tc := range []struct {
		s        string
		want, ok bool
	}{{"zstd", true, true}, {"none", false, true}, {"", false, true}, {"gzip", false, false}} {
		got, err := parseCompress(tc.s)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("parseCompress(%q) = %v, %v; want %v (ok %v)", tc.s, got, err, tc.want, tc.ok)
		}
	}
}
