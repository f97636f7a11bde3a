//! Modify Fact: Modification Time (`MFMT`, draft-somers-ftp-mfxx), and vsftpd's
//! `MDTM YYYYMMDDHHMMSS PATH`, which the parser turns into MFMT. (qftpd patch)
//
// MFMT YYYYMMDDHHMMSS[.sss] path
//
// sets the modification time of the file to the given time, in UTC, and answers
// `213 Modify=YYYYMMDDHHMMSS; path`. A time that is not a valid date and time gets 501 and
// nothing is changed.

use crate::{
    auth::UserDetail,
    server::{
        chancomms::ControlChanMsg,
        controlchan::{
            Reply, ReplyCode,
            error::ControlChanError,
            handler::{CommandContext, CommandHandler},
        },
    },
    storage::{Metadata, StorageBackend},
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use std::{path::PathBuf, sync::Arc};

#[derive(Debug)]
pub struct Mfmt {
    time: String,
    path: PathBuf,
}

impl Mfmt {
    pub fn new(time: String, path: PathBuf) -> Self {
        Mfmt { time, path }
    }
}

/// `YYYYMMDDHHMMSS[.s...]` (UTC) as a time; `None` unless it is a valid date and time (the
/// fraction may have up to 9 digits).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let (whole, fraction) = text.split_once('.').map_or((text, None), |(whole, fraction)| (whole, Some(fraction)));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // chrono alone would take a one-digit second and cut more than nine fraction digits.
    if whole.len() != 14 || !digits(whole) || fraction.is_some_and(|f| f.is_empty() || f.len() > 9 || !digits(f)) {
        return None;
    }
    let time = NaiveDateTime::parse_from_str(text, "%Y%m%d%H%M%S%.f").ok()?;
    // A leap second (60) cannot be stored.
    (time.nanosecond() < 1_000_000_000).then(|| time.and_utc())
}

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Mfmt
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        let Some(time) = parse_time(&self.time) else {
            return Ok(Reply::new_with_string(
                ReplyCode::ParameterSyntaxError,
                format!("{:?} is not a time of the form YYYYMMDDHHMMSS[.sss] (UTC)", self.time),
            ));
        };
        let session = args.session.lock().await;
        let user = session.user.clone();
        let storage = Arc::clone(&session.storage);
        let path = session.cwd.join(&self.path);
        let shown = self.path.display().to_string();
        let tx = args.tx_control_chan.clone();
        let logger = args.logger;
        let whole = self.time.split('.').next().unwrap_or_default().to_string();

        tokio::spawn(async move {
            let Some(user) = (*user).as_ref() else {
                return;
            };
            let msg = match storage.set_modified(user, &path, time).await {
                Ok(()) => {
                    slog::info!(logger, "MFMT: set the modification time of {:?} to {}", path, time);
                    ControlChanMsg::CommandChannelReply(Reply::new_with_string(ReplyCode::FileStatus, format!("Modify={}; {}", whole, shown)))
                }
                Err(err) => {
                    slog::warn!(logger, "MFMT: could not set the modification time of {:?}: {}", path, err);
                    ControlChanMsg::StorageError(err)
                }
            };
            if let Err(err) = tx.send(msg).await {
                slog::warn!(logger, "MFMT: Could not send internal message: {}", err);
            }
        });
        Ok(Reply::none())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_are_checked() {
        let t = parse_time("20240229235959").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-02-29T23:59:59+00:00");
        let t = parse_time("20240102030405.5").unwrap();
        assert_eq!(t.timestamp_subsec_millis(), 500);
        for bad in [
            "",
            "2024010203040",
            "202401020304050",
            "20241301000000",
            "20230229000000",
            "20240230000000",
            "20240101240000",
            "20240101006000",
            "20240101000060",
            "2024010100000x",
            "20240101000000.",
            "20240101000000.1234567890",
            "+2024010100000",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }
}
