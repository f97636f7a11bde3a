//! `SITE CHMOD MODE PATH`: sets the mode on the cluster.

use async_trait::async_trait;
use libunftp::options::{Reply, ReplyCode, SiteCommandContext, SiteCommandHandler};

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
            return Reply::new(ReplyCode::NotLoggedIn, "Please log in first");
        };
        let (mode, target) = match ctx.arguments.trim().split_once(' ') {
            Some((mode, target)) if !target.trim().is_empty() => (mode, target.trim()),
            _ => {
                return Reply::new(
                    ReplyCode::ParameterSyntaxError,
                    "Usage: SITE CHMOD <octal mode> <path>",
                );
            }
        };
        let Some(mode) = u32::from_str_radix(mode, 8)
            .ok()
            .filter(|m| mode.len() <= 4 && *m <= 0o7777)
        else {
            return Reply::new_with_string(
                ReplyCode::ParameterSyntaxError,
                format!("{mode:?} is not an octal mode"),
            );
        };
        let ftp_path = ctx.cwd.join(target);
        let path = match to_cluster(&user.root, &ftp_path) {
            Ok(p) => p,
            Err(e) => {
                return Reply::new_with_string(ReplyCode::BadFileName, format!("{target}: {e}"));
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
                Reply::new_with_string(
                    ReplyCode::CommandOkay,
                    format!("SITE CHMOD {mode:04o} {target}: done"),
                )
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
