package web

import "testing"

// Every page's template parses with the layout and the partials (a
// template error would otherwise show only when the page is visited).
func TestTemplatesParse(t *testing.T) {
	p, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range pageNames {
		if p.t[n] == nil || p.t[n].Lookup("content") == nil || p.t[n].Lookup("layout") == nil {
			t.Errorf("page %s lacks its content or the layout", n)
		}
	}
}
