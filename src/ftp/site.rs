//! SITE commands: `SITE CHMOD MODE PATH` sets the mode on the cluster; `SITE UTIME` sets a
//! file's modification time (UTC) in the forms clients send: ProFTPD's
//! `SITE UTIME YYYYMMDDhhmm[ss] PATH` and `SITE UTIME ATIME MTIME CTIME PATH UTC` (lftp), and
//! `SITE UTIME PATH YYYYMMDDhhmm[ss]`.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use libunftp::options::{Reply, ReplyCode, SiteCommandContext, SiteCommandHandler};
use unftp_core::storage::StorageBackend;

use super::errors::site as text;
use super::path::to_cluster;
use super::storage::QumuloStorage;
use super::user::User;
use crate::qumulo::AttrPatch;

/// The `SITE CHMOD` handler.
#[derive(Debug)]
pub struct Chmod;

#[async_trait]
impl SiteCommandHandler<QumuloStorage, User> for Chmod {
    async fn handle(&self, ctx: &SiteCommandContext<QumuloStorage, User>) -> Reply {
        let Some(user) = ctx.user.as_ref().as_ref() else {
            return Reply::new(ReplyCode::NotLoggedIn, text::NOT_LOGGED_IN);
        };
        let (mode, target) = match ctx.arguments.trim().split_once(' ') {
            Some((mode, target)) if !target.trim().is_empty() => (mode, target.trim()),
            _ => {
                return Reply::new(ReplyCode::ParameterSyntaxError, text::CHMOD_USAGE);
            }
        };
        let Some(mode) = u32::from_str_radix(mode, 8)
            .ok()
            .filter(|m| mode.len() <= 4 && *m <= 0o7777)
        else {
            return Reply::new_with_string(
                ReplyCode::ParameterSyntaxError,
                text::not_an_octal_mode(mode),
            );
        };
        let ftp_path = ctx.cwd.join(target);
        if let Err(e) = to_cluster(&user.root, &ftp_path) {
            return Reply::new_with_string(ReplyCode::BadFileName, text::bad_path(target, &e));
        }
        // Under chroot, the file's id once it is known to be in the home.
        let path = match super::confine::existing(user, &ftp_path).await {
            Ok(p) => p,
            Err(e) => {
                let text = super::errors::reason(&e).replace(['\r', '\n'], " ");
                return Reply::new_with_string(ReplyCode::FileError, text);
            }
        };
        match user
            .session
            .set_attr(
                &path,
                &AttrPatch {
                    mode: Some(mode),
                    ..AttrPatch::default()
                },
            )
            .await
        {
            Ok(_) => {
                tracing::info!(user = %user.name, client = %user.client, path = %ftp_path.display(), mode = format!("{mode:04o}"), "chmod");
                Reply::new_with_string(ReplyCode::CommandOkay, text::chmod_done(mode, target))
            }
            Err(e) => {
                let err = super::errors::cluster(&ftp_path, &e);
                let text = std::error::Error::source(&err)
                    .map_or_else(|| err.to_string(), ToString::to_string);
                Reply::new_with_string(ReplyCode::FileError, text.replace(['\r', '\n'], " "))
            }
        }
    }
}

/// The `SITE UTIME` handler.
#[derive(Debug)]
pub struct Utime;

#[async_trait]
impl SiteCommandHandler<QumuloStorage, User> for Utime {
    async fn handle(&self, ctx: &SiteCommandContext<QumuloStorage, User>) -> Reply {
        let Some(user) = ctx.user.as_ref().as_ref() else {
            return Reply::new(ReplyCode::NotLoggedIn, text::NOT_LOGGED_IN);
        };
        let Some((time, target)) = utime_arguments(&ctx.arguments) else {
            return Reply::new(ReplyCode::ParameterSyntaxError, text::UTIME_USAGE);
        };
        let Some(mtime) = parse_time(time) else {
            return Reply::new_with_string(
                ReplyCode::ParameterSyntaxError,
                text::not_a_valid_time(time),
            );
        };
        let ftp_path = ctx.cwd.join(target);
        match ctx.storage.set_modified(user, &ftp_path, mtime).await {
            Ok(()) => Reply::new_with_string(
                ReplyCode::CommandOkay,
                text::utime_done(target, mtime).replace(['\r', '\n'], " "),
            ),
            Err(e) => Reply::new_with_string(
                ReplyCode::FileError,
                super::errors::reason(&e).replace(['\r', '\n'], " "),
            ),
        }
    }
}

/// Whether `word` has the shape of a `SITE UTIME` time: 12 or 14 digits.
fn time_like(word: &str) -> bool {
    matches!(word.len(), 12 | 14) && word.bytes().all(|b| b.is_ascii_digit())
}

/// The modification time and the path of `SITE UTIME`'s arguments, in any of its forms.
fn utime_arguments(args: &str) -> Option<(&str, &str)> {
    let args = args.trim_start();
    // ATIME MTIME CTIME PATH UTC (ProFTPD's mod_site_misc, lftp): the second time is mtime.
    if let Some(rest) = args
        .strip_suffix(" UTC")
        .or_else(|| args.strip_suffix(" utc"))
    {
        let mut words = rest.splitn(4, ' ');
        if let (Some(a), Some(m), Some(c), Some(path)) =
            (words.next(), words.next(), words.next(), words.next())
            && [a, m, c].iter().all(|w| time_like(w))
            && !path.is_empty()
        {
            return Some((m, path));
        }
    }
    // YYYYMMDDhhmm[ss] PATH
    if let Some((time, path)) = args.split_once(' ')
        && time_like(time)
        && !path.is_empty()
    {
        return Some((time, path));
    }
    // PATH YYYYMMDDhhmm[ss]
    match args.trim_end().rsplit_once(' ') {
        Some((path, time)) if time_like(time) && !path.is_empty() => Some((time, path)),
        _ => None,
    }
}

/// `YYYYMMDDhhmm[ss]` (UTC); `None` unless it is a valid date and time.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let format = match text.len() {
        14 => "%Y%m%d%H%M%S",
        _ => "%Y%m%d%H%M",
    };
    if !time_like(text) {
        return None;
    }
    let time = NaiveDateTime::parse_from_str(text, format).ok()?;
    // A leap second (60) cannot be stored.
    (time.nanosecond() < 1_000_000_000).then(|| time.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_forms() {
        assert_eq!(
            utime_arguments("20240102030405 a b.txt"),
            Some(("20240102030405", "a b.txt"))
        );
        assert_eq!(
            utime_arguments("a b.txt 20240102030405"),
            Some(("20240102030405", "a b.txt"))
        );
        assert_eq!(
            utime_arguments("20240101000000 20240102030405 20240101000000 dir/a b UTC"),
            Some(("20240102030405", "dir/a b"))
        );
        assert_eq!(
            utime_arguments("202401020304 f"),
            Some(("202401020304", "f"))
        );
        assert_eq!(utime_arguments("f"), None);
        assert_eq!(utime_arguments("2024 f"), None);
        assert_eq!(utime_arguments("20240102030405"), None);
    }

    #[test]
    fn utime_times() {
        assert_eq!(
            parse_time("20240229235959").unwrap().to_rfc3339(),
            "2024-02-29T23:59:59+00:00"
        );
        assert_eq!(
            parse_time("202401020304").unwrap().to_rfc3339(),
            "2024-01-02T03:04:00+00:00"
        );
        for bad in [
            "20241301000000",
            "20230229000000",
            "20240230000000",
            "20240101240000",
            "20240101006000",
            "20240101000060",
            "2024010100000",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
