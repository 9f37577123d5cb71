package browsertest

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// MobileWidth is the width below which [Tab.SetViewport] emulates a mobile
// device.
const MobileWidth = 600

// SetViewport sets the size of the viewport of the tab, in CSS pixels, with a
// device scale factor of 1. A width below [MobileWidth] emulates a mobile
// device: the page's viewport meta tag applies, scrollbars overlay the page,
// and touch events are on.
func (tab *Tab) SetViewport(width, height int) error {
	if width <= 0 || height <= 0 {
		return fmt.Errorf("browsertest: set viewport: invalid size %dx%d", width, height)
	}
	mobile := width < MobileWidth
	_, err := runValue(tab, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width:             int64(width),
			Height:            int64(height),
			DeviceScaleFactor: 1,
			Mobile:            mobile,
		}); err != nil {
			return fmt.Errorf("%s: %w", emulation.CommandSetDeviceMetricsOverride, err)
		}
		if _, err := cdp.Call(ctx, t, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{
			Enabled: mobile,
		}); err != nil {
			return fmt.Errorf("%s: %w", emulation.CommandSetTouchEmulationEnabled, err)
		}
		return nil
	}))
	if err != nil {
		return fmt.Errorf("browsertest: set viewport %dx%d: %w", width, height, err)
	}
	return nil
}

// Screenshot sets the viewport to width x height (see [Tab.SetViewport]) and
// writes a screenshot of the whole page as a PNG file dir/name.png. It creates
// dir when needed and returns the path of the file. The image is width pixels
// wide, and as high as the page but at least height pixels. A page that is
// zoomed out on a mobile viewport (no viewport meta tag) is captured as the
// device shows it. It fails the test with t.Fatal on an error.
//
// The viewport stays at that size afterwards.
func (tab *Tab) Screenshot(t testing.TB, dir, name string, width, height int) string {
	t.Helper()
	if err := tab.SetViewport(width, height); err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
	png, err := runValue(tab, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		m, err := cdp.Call(ctx, t, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", page.CommandGetLayoutMetrics, err)
		}
		// A mobile page without a viewport meta tag is laid out wider
		// than the screen and zoomed out to fit, with a scale below 1.
		// The clip is in CSS pixels of the page, and its scale makes the
		// image width pixels wide, as on the device.
		scale := 1.0
		if v := m.CSSVisualViewport; v != nil && v.Scale > 0 {
			scale = v.Scale
		}
		w, h := float64(width)/scale, float64(height)/scale
		if m.CSSContentSize != nil {
			h = math.Max(h, math.Ceil(m.CSSContentSize.Height))
		}
		r, err := cdp.Call(ctx, t, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format:                page.CaptureScreenshotFormatPng,
			Clip:                  &page.Viewport{Width: w, Height: h, Scale: scale},
			CaptureBeyondViewport: new(true),
			FromSurface:           new(true),
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", page.CommandCaptureScreenshot, err)
		}
		return r.Data, nil
	})
	if err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", name, err)
	}
	return path
}
