//! The WebDriver session of a test: srql-bench's client, failing the test on any error.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use srql_bench::webdriver::{Driver, Element, Session};

pub struct Browser {
    // Dropped after the session: the session closes through the driver.
    session: Session,
    _driver: Driver,
}

fn ok<T>(r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

impl Browser {
    /// Headless Chromium, 1400×1000, or a failure saying what to install.
    pub fn open() -> Browser {
        let driver = ok(Driver::start());
        let session = ok(driver.session(1400, 1000));
        Browser {
            session,
            _driver: driver,
        }
    }

    pub fn goto(&self, url: &str) {
        ok(self.session.goto(url));
    }

    pub fn back(&self) {
        ok(self.session.back());
    }

    pub fn js(&self, script: &str, args: Vec<Value>) -> Value {
        ok(self.session.js(script, args))
    }

    pub fn wait_for(&self, what: &str, expr: &str, secs: u64) -> Value {
        ok(self.session.wait_for(what, expr, Duration::from_secs(secs)))
    }

    pub fn find(&self, css: &str) -> Element {
        ok(self.session.find(css))
    }

    pub fn click(&self, e: &Element) {
        ok(self.session.click(e));
    }

    pub fn click_at(&self, e: &Element, dx: i64, dy: i64) {
        ok(self.session.click_at(e, dx, dy));
    }

    pub fn type_into(&self, e: &Element, text: &str) {
        ok(self.session.type_into(e, text));
    }

    pub fn alert_text(&self) -> Option<String> {
        self.session.alert_text()
    }

    pub fn screenshot(&self, to: &Path) {
        let png = ok(self.session.screenshot());
        std::fs::write(to, png).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
    }
}
