//! The report in a real browser: headless Chromium loads the page from a file, runs its
//! script, and dumps the DOM; the test checks that the script ran to the end without errors,
//! that the Gantt chart's bars were laid out, and that the tooltip works.
//!
//! Chromium is required: `scripts/test.sh` installs Debian's `chromium` package. Set
//! `MILO_CHROMIUM` to use another Chrome or Chromium binary. Without one the test fails
//! saying so, rather than passing without having looked.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use milo_report::{ReportRun, render_html};
use scraper::{Html, Selector};

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("MILO_CHROMIUM") {
        return PathBuf::from(p);
    }
    let candidates = [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
        "/usr/bin/google-chrome-stable",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is needed to test the HTML report in a browser, and none was found at {}: \
                 install it (`apt-get install chromium`, as scripts/test.sh does) or set MILO_CHROMIUM=/path/to/chrome",
                candidates.join(", ")
            )
        })
}

/// Loads `page` in headless Chromium; returns the DOM after its scripts ran, and stderr.
fn dump_dom(page: &Path, profile: &Path) -> (String, String) {
    let browser = chromium();
    let mut child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", browser.display()));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} did not finish within 90 s", browser.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{} failed ({status}):\n{err}", browser.display());
    (out, err)
}

/// Lines of Chromium's log that report a script error or a failed load.
fn script_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            (l.contains(":CONSOLE") && (l.contains("Uncaught") || l.contains("Error"))) || l.contains("net::ERR_")
        })
        .collect()
}

#[test]
fn the_report_draws_in_headless_chromium_without_script_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = common::retry_run();
    // The page itself, plus a probe run after it: hover the first retried attempt and
    // record what the tooltip says.
    let probe = r#"<script>
(function () {
  var bar = document.querySelector('rect.bar[data-phase="flaky"][data-attempt="1"]');
  var r = bar.getBoundingClientRect();
  bar.dispatchEvent(new MouseEvent("mouseenter", {clientX: r.left + 1, clientY: r.top + 1}));
  var tip = document.getElementById("tip");
  document.body.dataset.tipShown = String(!tip.hidden);
  document.body.dataset.tipText = tip.textContent;
})();
</script>
</body>"#;
    let html = render_html(&run).replacen("</body>", probe, 1);
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();

    let (dom, stderr) = dump_dom(&page, &dir.path().join("profile"));
    let errors = script_errors(&stderr);
    assert!(errors.is_empty(), "script errors: {errors:#?}");

    let doc = Html::parse_document(&dom);
    let body = doc.select(&Selector::parse("body").unwrap()).next().expect("a body");
    let data = |k: &str| body.value().attr(k).unwrap_or_default().to_owned();
    assert_eq!(data("data-ok"), "1", "the page's script did not finish:\n{stderr}");
    assert_eq!(data("data-bars"), "4");
    assert_eq!(data("data-drawn"), "4", "every bar is laid out with a width");
    assert_eq!(data("data-pwned"), "", "a log line ran as script");
    assert_eq!(data("data-tip-shown"), "true");
    let tip = data("data-tip-text");
    assert!(
        tip.contains("flaky · attempt 1 · retried") && tip.contains("duration 1s") && tip.contains("connection reset"),
        "{tip}"
    );
    let bars = doc.select(&Selector::parse("svg.gantt rect.bar").unwrap()).count();
    assert_eq!(bars, 4);
    // The script moved the SVG titles into the tooltip.
    assert_eq!(doc.select(&Selector::parse("rect.bar title").unwrap()).count(), 0);

    // The timeline-file page too.
    let timeline = ReportRun::from_timeline(&common::known_timeline()).unwrap();
    let page = dir.path().join("timeline.html");
    std::fs::write(&page, render_html(&timeline)).unwrap();
    let (dom, stderr) = dump_dom(&page, &dir.path().join("profile2"));
    let errors = script_errors(&stderr);
    assert!(errors.is_empty(), "script errors: {errors:#?}");
    assert!(dom.contains("data-ok=\"1\""), "{stderr}");
    assert!(dom.contains("data-drawn=\"4\""), "{dom}");
}
