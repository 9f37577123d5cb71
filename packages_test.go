package cronium

import (
	"errors"
	"strings"
	"testing"
)

func TestPackagesNormalize(t *testing.T) {
	good := Packages{Apt: []string{"postgresql-client", "jq=1.6-2.1", "g++", "jq=1.6-2.1"}}
	if err := good.Normalize("packages", Bash); err != nil || len(good.Apt) != 3 {
		t.Errorf("apt: %v %v", err, good.Apt)
	}
	py := Packages{Python: []string{"requests==2.*", "pyyaml>=6,<7", "uvicorn[standard]~=0.30", "Django"}}
	if err := py.Normalize("packages", Python); err != nil {
		t.Errorf("python: %v", err)
	}
	node := Packages{Node: []string{"axios@1", "@scope/pkg@^2.1.0", "lodash", "left-pad@1.x || 2.x"}}
	if err := node.Normalize("packages", Node); err != nil {
		t.Errorf("node: %v", err)
	}
	bad := []struct {
		p     Packages
		lang  Language
		field string
		says  string
	}{
		{Packages{Apt: []string{"jq", "Bad_Name"}}, Bash, "packages.apt[1]", "not a Debian package name"},
		{Packages{Apt: []string{"jq=latest!"}}, Bash, "packages.apt[0]", "version that does not parse"},
		{Packages{Python: []string{"requests===="}}, Python, "packages.python[0]", "does not parse"},
		{Packages{Python: []string{"requests @ https://evil.example/x.whl"}}, Python, "packages.python[0]", "no URLs"},
		{Packages{Python: []string{"--index-url=http://x"}}, Python, "packages.python[0]", "options"},
		{Packages{Python: []string{"requests>=2 ; python_version<'3'"}}, Python, "packages.python[0]", "markers"},
		{Packages{Node: []string{"git+https://example.com/x.git"}}, Node, "packages.node[0]", "no URLs"},
		{Packages{Node: []string{"axios@"}}, Node, "packages.node[0]", "empty version range"},
		{Packages{Node: []string{"Axios@1"}}, Node, "packages.node[0]", "not an npm package name"},
		{Packages{Node: []string{"axios@1;rm"}}, Node, "packages.node[0]", "does not parse"},
		{Packages{Python: []string{"requests"}}, Bash, "packages.python", "needs a python event"},
		{Packages{Node: []string{"axios"}}, Python, "packages.node", "needs a node event"},
		{Packages{Apt: make([]string, MaxPackages+1)}, Bash, "packages.apt", "too many"},
	}
	for _, c := range bad {
		err := c.p.Normalize("packages", c.lang)
		var fe *FieldError
		if err == nil || !strings.Contains(err.Error(), c.says) || !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: error %v, want field %s saying %q", c.p, err, c.field, c.says)
		}
	}
}
