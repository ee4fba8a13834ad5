//! The embedded files of the traces tab (`crates/server/ui/`), with their content types.

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

impl Asset {
    /// A strong validator from the bytes (FNV-1a), computed per request: the files are
    /// small and this spares a lazy static.
    pub fn etag(&self) -> String {
        let hash = self.bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("\"{hash:016x}\"")
    }
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

pub const INDEX: Asset = Asset {
    name: "index.html",
    content_type: HTML,
    bytes: include_bytes!("../../ui/index.html"),
};

macro_rules! asset {
    ($name:literal, $ty:expr) => {
        Asset {
            name: $name,
            content_type: $ty,
            bytes: include_bytes!(concat!("../../ui/", $name)),
        }
    };
}

const FILES: &[Asset] = &[
    asset!("style.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("main.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("location.js", JS),
    asset!("query.js", JS),
    asset!("list.js", JS),
    asset!("scatter.js", JS),
    asset!("trace.js", JS),
    asset!("waterfall.js", JS),
];

pub fn find(name: &str) -> Option<&'static Asset> {
    FILES.iter().find(|a| a.name == name)
}
