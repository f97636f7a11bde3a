//! The `HELP` command
//
// A HELP request asks for human-readable information from the server. The server may accept this request with code 211 or 214, or reject it with code 502.
//
// A HELP request may include a parameter. The meaning of the parameter is defined by the server. Some servers interpret the parameter as an FTP verb,
// and respond by briefly explaining the syntax of the verb.

use crate::{
    auth::UserDetail,
    server::{
        controlchan::{
            Reply, ReplyCode,
            error::ControlChanError,
            handler::{CommandContext, CommandHandler},
        },
        ftpserver::options::SiteMd5,
    },
    storage::{FEATURE_SITEMD5, Metadata, StorageBackend},
};
use async_trait::async_trait;

/// The verbs the parser knows (`line_parser/parser.rs`), but the TLS ones and SITE's
/// subcommands, which depend on the configuration. (qftpd patch)
const COMMANDS: &[&str] = &[
    "ABOR", "ACCT", "ALLO", "APPE", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT", "HELP", "LIST", "MDTM", "MFMT", "MKD", "MLSD", "MLST", "MODE", "NLST",
    "NOOP", "OPTS", "PASS", "PASV", "PORT", "PWD", "QUIT", "REST", "RETR", "RMD", "RNFR", "RNTO", "SITE", "SIZE", "STAT", "STOR", "STOU", "STRU", "SYST",
    "TYPE", "USER", "XCUP", "XCWD", "XMKD", "XPWD", "XRMD",
];

#[derive(Debug)]
pub struct Help;

#[async_trait]
impl<Storage, User> CommandHandler<Storage, User> for Help
where
    User: UserDetail + 'static,
    Storage: StorageBackend<User> + 'static,
    Storage::Metadata: Metadata,
{
    #[tracing_attributes::instrument]
    async fn handle(&self, args: CommandContext<Storage, User>) -> Result<Reply, ControlChanError> {
        // qftpd patch: the commands this server implements (RFC 959 HELP, 214), without
        // naming the software or its version.
        let mut verbs: Vec<&str> = COMMANDS.to_vec();
        if args.tls_configured {
            verbs.extend(["AUTH", "CCC", "PBSZ", "PROT"]);
        }
        verbs.sort_unstable();
        let mut text = vec!["The following commands are recognized.".to_string()];
        text.extend(verbs.chunks(8).map(|chunk| format!(" {}", chunk.join(" "))));
        let mut site: Vec<&str> = args.site_handlers.keys().map(String::as_str).collect();
        if args.sitemd5 != SiteMd5::None && args.storage_features & FEATURE_SITEMD5 > 0 {
            site.push("MD5");
        }
        if !site.is_empty() {
            site.sort_unstable();
            text.push(format!(" SITE {}", site.join(" ")));
        }
        text.push("Help OK.".to_string());
        Ok(Reply::new_multiline(ReplyCode::HelpMessage, text))
    }
}
