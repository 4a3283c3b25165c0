//! What a User-Agent says: device type, operating system, browser, and whether it is a
//! well-known robot. A small hand-written matcher: good enough for the timeline and the
//! bot filter, not a full UA database.

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Agent {
    pub device_type: &'static str,
    pub os: &'static str,
    pub browser: &'static str,
}

impl Agent {
    /// A new device of `contact_id`, seen at `at` with `user_agent` (the one this agent was
    /// read from; kept to 512 characters).
    pub fn device(
        &self,
        tracking_id: String,
        contact_id: i64,
        user_agent: &str,
        at: i64,
    ) -> crate::store::tracking::NewDevice {
        crate::store::tracking::NewDevice {
            tracking_id,
            contact_id,
            device_type: self.device_type.to_owned(),
            os: self.os.to_owned(),
            browser: self.browser.to_owned(),
            user_agent: user_agent.chars().take(512).collect(),
            at,
        }
    }
}

/// Substrings (lower case) of robots' User-Agents. Crawlers of search engines, link
/// previewers and monitoring tools.
const BOTS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "mediapartners-google",
    "google web preview",
    "facebookexternalhit",
    "ezooms",
    "yahooseeker",
    "altavista",
    "avsearch",
    "mercator",
    "yandex",
    "yanga",
    "zgrab",
    "xovi",
    "yacy",
    "pingdom",
    "embedly",
    "whatsapp",
    "skypeuripreview",
    "ia_archiver",
];

/// Robots are not tracked. Headless browsers are not robots here: people test their
/// sites with them, and a real crawler says what it is.
pub fn is_bot(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    BOTS.iter().any(|b| ua.contains(b))
}

pub fn parse(user_agent: &str) -> Agent {
    let ua = user_agent.to_ascii_lowercase();
    let has = |s: &str| ua.contains(s);
    let os = if has("windows") {
        "Windows"
    } else if has("iphone") || has("ipad") || has("ipod") {
        "iOS"
    } else if has("android") {
        "Android"
    } else if has("cros") {
        "Chrome OS"
    } else if has("mac os x") || has("macintosh") {
        "macOS"
    } else if has("linux") {
        "Linux"
    } else if has("freebsd") || has("openbsd") {
        "BSD"
    } else {
        ""
    };
    let browser = if has("edg/") || has("edge/") {
        "Edge"
    } else if has("opr/") || has("opera") {
        "Opera"
    } else if has("samsungbrowser") {
        "Samsung Internet"
    } else if has("firefox/") || has("fxios") {
        "Firefox"
    } else if has("chrome/") || has("crios") || has("chromium") {
        "Chrome"
    } else if has("safari/") {
        "Safari"
    } else if has("msie") || has("trident/") {
        "Internet Explorer"
    } else {
        ""
    };
    let device_type = if is_bot(user_agent) {
        "bot"
    } else if has("ipad") || has("tablet") || (has("android") && !has("mobile")) {
        "tablet"
    } else if has("mobile") || has("iphone") || has("ipod") || has("android") {
        "smartphone"
    } else if ua.is_empty() {
        ""
    } else {
        "desktop"
    };
    Agent {
        device_type,
        os,
        browser,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
                "desktop",
                "Windows",
                "Chrome",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0",
                "desktop",
                "Windows",
                "Edge",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
                "desktop",
                "macOS",
                "Safari",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
                "smartphone",
                "iOS",
                "Safari",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
                "smartphone",
                "Android",
                "Chrome",
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
                "tablet",
                "Android",
                "Chrome",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
                "desktop",
                "Linux",
                "Firefox",
            ),
            (
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
                "bot",
                "",
                "",
            ),
            ("", "", "", ""),
        ];
        for (ua, t, os, browser) in cases {
            assert_eq!(
                parse(ua),
                Agent {
                    device_type: t,
                    os,
                    browser
                },
                "{ua}"
            );
        }
        assert!(is_bot("Mozilla/5.0 (compatible; bingbot/2.0)"));
        assert!(is_bot("facebookexternalhit/1.1"));
        assert!(!is_bot(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
        ));
    }
}
