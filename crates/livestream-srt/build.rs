//! Links libsrt as pkg-config's `srt` names it: Debian and Ubuntu build it twice, for GnuTLS
//! (`libsrt-gnutls`, the one their ffmpeg uses) and for OpenSSL (`libsrt-openssl`).

fn main() {
    if let Err(error) = pkg_config::Config::new().atleast_version("1.4.2").probe("srt") {
        panic!(
            "libsrt 1.4.2 or later was not found ({error}): install libsrt-gnutls-dev (Debian, Ubuntu) \
             or your distribution's libsrt development package, with pkg-config"
        );
    }
}
