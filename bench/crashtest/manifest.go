package crashtest

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// ManifestFile is one line of a manifest: at mark Mark, the file at Path
// (from the file system's root) has the md5 sum MD5 (32 hex digits).
type ManifestFile struct {
	Mark, Path, MD5 string
}

// Manifest holds the expected files by mark label.
type Manifest map[string][]ManifestFile

// ErrManifest: a manifest line is malformed.
var ErrManifest = errors.New("bench: bad manifest")

// ParseManifest reads lines of "MARK PATH MD5". A line may also start with
// the word MANIFEST, as the kernel VM scenarios print them. Blank lines and
// lines starting with # are skipped. Paths hold no white space; a relative
// path is taken from the root.
func ParseManifest(r io.Reader) (Manifest, error) {
	m := Manifest{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "MANIFEST" {
			f = f[1:]
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("%w: line %d: want MARK PATH MD5, got %q", ErrManifest, n, line)
		}
		sum := strings.ToLower(f[2])
		if b, err := hex.DecodeString(sum); err != nil || len(b) != md5.Size {
			return nil, fmt.Errorf("%w: line %d: %q is not an md5 sum", ErrManifest, n, f[2])
		}
		p := path.Clean("/" + f[1])
		for _, prev := range m[f[0]] {
			if prev.Path == p {
				return nil, fmt.Errorf("%w: line %d: %s listed twice at mark %q", ErrManifest, n, p, f[0])
			}
		}
		m[f[0]] = append(m[f[0]], ManifestFile{Mark: f[0], Path: p, MD5: sum})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	return m, nil
}

// Len is the number of files the manifest lists, over all marks.
func (m Manifest) Len() int {
	n := 0
	for _, fs := range m {
		n += len(fs)
	}
	return n
}

// Labels returns the marks that have lines, sorted.
func (m Manifest) Labels() []string {
	var l []string
	for k := range m {
		l = append(l, k)
	}
	slices.Sort(l)
	return l
}

// checkFiles compares the files under root with want and returns one line
// per problem (empty when all match). With exact, regular files that want
// does not list are problems too.
func checkFiles(root string, want []ManifestFile, exact bool) ([]string, error) {
	var problems []string
	listed := map[string]bool{}
	for _, w := range want {
		listed[w.Path] = true
		got, err := md5File(filepath.Join(root, filepath.FromSlash(w.Path)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			problems = append(problems, fmt.Sprintf("%s: missing, expected md5 %s", w.Path, w.MD5))
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v, expected md5 %s", w.Path, err, w.MD5))
		case got != w.MD5:
			problems = append(problems, fmt.Sprintf("%s: md5 %s, expected %s", w.Path, got, w.MD5))
		}
	}
	if !exact {
		return problems, nil
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if rel = "/" + filepath.ToSlash(rel); !listed[rel] {
			problems = append(problems, fmt.Sprintf("%s: not in the manifest", rel))
		}
		return nil
	})
	if err != nil {
		return problems, fmt.Errorf("walking %s: %w", root, err)
	}
	return problems, nil
}

func md5File(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
