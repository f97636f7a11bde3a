//! The `/v1/files` endpoints. Data is streamed both ways: reads are a file stream with a
//! Content-Length, writes copy the (usually chunked) request body to disk as it arrives.

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;

use super::{Caller, JsonBody, P, Q, State, blocking};
use crate::sim::error::{ApiError, ApiResult, ErrorClass};
use crate::sim::store::{Acl, AttrPatch, CreateRequest, ReadPlan};

/// Read and write buffer size of data transfers.
const IO_BUF: usize = 256 * 1024;

/// Refuses `?snapshot=`: the simulator keeps no snapshots.
fn no_snapshots(snapshot: Option<&String>) -> ApiResult<()> {
    match snapshot {
        Some(s) => Err(ApiError::new(
            ErrorClass::NoSuchEntry,
            format!("No snapshot {s}: the simulator keeps none"),
        )),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
pub(super) struct AttrQuery {
    snapshot: Option<String>,
}

pub(super) async fn get_attrs(
    state: State,
    Caller(user): Caller,
    P(r): P<String>,
    Q(q): Q<AttrQuery>,
) -> ApiResult<Json<Value>> {
    no_snapshots(q.snapshot.as_ref())?;
    blocking(move || state.store.get_attributes(&user, &r))
        .await
        .map(Json)
}

pub(super) async fn patch_attrs(
    state: State,
    Caller(user): Caller,
    P(r): P<String>,
    JsonBody(patch): JsonBody<AttrPatch>,
) -> ApiResult<Json<Value>> {
    blocking(move || state.store.set_attributes(&user, &r, &patch))
        .await
        .map(Json)
}

/// `GET /v2/files/{ref}/info/acl`.
pub(super) async fn get_acl(
    state: State,
    Caller(user): Caller,
    P(r): P<String>,
    Q(q): Q<AttrQuery>,
) -> ApiResult<Json<Value>> {
    no_snapshots(q.snapshot.as_ref())?;
    blocking(move || state.store.get_acl(&user, &r))
        .await
        .map(Json)
}

/// `PUT /v2/files/{ref}/info/acl`.
pub(super) async fn put_acl(
    state: State,
    Caller(user): Caller,
    P(r): P<String>,
    JsonBody(acl): JsonBody<Acl>,
) -> ApiResult<Json<Value>> {
    blocking(move || state.store.set_acl(&user, &r, &acl))
        .await
        .map(Json)
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
    snapshot: Option<String>,
    #[serde(rename = "smb-pattern")]
    smb_pattern: Option<String>,
}

pub(super) async fn list(
    state: State,
    Caller(user): Caller,
    P(r): P<String>,
    Q(q): Q<ListQuery>,
) -> ApiResult<Json<crate::sim::store::Listing>> {
    no_snapshots(q.snapshot.as_ref())?;
    if q.smb_pattern.is_some() {
        return Err(ApiError::new(
            ErrorClass::Decode,
            "smb-pattern is not supported by the simulator",
        ));
    }
    blocking(move || state.store.list(&user, &r, q.after.as_deref(), q.limit))
        .await
        .map(Json)
}

pub(super) async fn create(
    state: State,
    Caller(user): Caller,
    P(r): P<String>,
    JsonBody(req): JsonBody<CreateRequest>,
) -> ApiResult<Json<Value>> {
    blocking(move || state.store.create(&user, &r, &req))
        .await
        .map(Json)
}

pub(super) async fn delete(
    state: State,
    Caller(user): Caller,
    P(r): P<String>,
) -> ApiResult<StatusCode> {
    blocking(move || state.store.delete(&user, &r))
        .await
        .map(|()| StatusCode::OK)
}

pub(super) async fn unlink(
    state: State,
    Caller(user): Caller,
    P((r, name)): P<(String, String)>,
) -> ApiResult<StatusCode> {
    blocking(move || state.store.unlink(&user, &r, &name))
        .await
        .map(|()| StatusCode::OK)
}

#[derive(Deserialize)]
pub(super) struct ReadQuery {
    offset: Option<u64>,
    length: Option<u64>,
    snapshot: Option<String>,
}

pub(super) async fn read(
    state: State,
    Caller(user): Caller,
    P(r): P<String>,
    Q(q): Q<ReadQuery>,
) -> ApiResult<Response> {
    no_snapshots(q.snapshot.as_ref())?;
    let offset = q.offset.unwrap_or(0);
    let (plan, etag) = blocking(move || state.store.open_read(&user, &r, offset, q.length)).await?;
    let (body, len) = match plan {
        ReadPlan::Bytes(b) => {
            let len = b.len() as u64;
            (Body::from(b), len)
        }
        ReadPlan::File(file, len) => {
            let reader = tokio::fs::File::from_std(file).take(len);
            (
                Body::from_stream(ReaderStream::with_capacity(reader, IO_BUF)),
                len,
            )
        }
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        headers.insert(header::ETAG, v);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct WriteQuery {
    offset: Option<u64>,
}

/// `PUT …/data`: replaces the whole content.
pub(super) async fn replace(
    state: State,
    caller: ApiResult<Caller>,
    r: ApiResult<P<String>>,
    body: Body,
) -> ApiResult<Json<Value>> {
    write(state, caller, r, Ok(0), true, body).await
}

/// `PATCH …/data?offset=O`: writes at O, zero-extending past the end.
pub(super) async fn write_at(
    state: State,
    caller: ApiResult<Caller>,
    r: ApiResult<P<String>>,
    q: ApiResult<Q<WriteQuery>>,
    body: Body,
) -> ApiResult<Json<Value>> {
    let offset = q.and_then(|Q(q)| {
        q.offset
            .ok_or_else(|| ApiError::new(ErrorClass::Decode, "PATCH of data needs ?offset="))
    });
    write(state, caller, r, offset, false, body).await
}

/// Streams the body to disk. A write refused before or during the transfer still reads the
/// rest of the body before answering, so the client (which sends the whole body before it
/// reads the answer) sees the error rather than a connection reset. The copy runs in its own
/// task holding the file's write lock: if the client goes away mid-body, the copy still
/// finishes writing what arrived before any later write of that file starts.
async fn write(
    state: State,
    caller: ApiResult<Caller>,
    r: ApiResult<P<String>>,
    offset: ApiResult<u64>,
    replace: bool,
    body: Body,
) -> ApiResult<Json<Value>> {
    let stream = body.into_data_stream();
    let opened = async {
        let (Caller(user), P(r), offset) = (caller?, r?, offset?);
        let st = state.clone();
        let (file, obj) = blocking(move || st.store.open_write(&user, &r)).await?;
        Ok((file, obj, offset))
    }
    .await;
    let (file, obj, offset) = match opened {
        Ok(opened) => opened,
        Err(e) => return Err(drain(stream, e).await),
    };
    let ino = std::os::unix::fs::MetadataExt::ino(&obj.meta);
    let guard = state.store.write_lock(ino).lock_owned().await;
    let path = obj.path.clone();
    let copy = tokio::spawn(async move {
        let result = copy_body(
            tokio::fs::File::from_std(file),
            stream,
            offset,
            replace,
            &path,
        )
        .await;
        drop(guard);
        result
    });
    copy.await
        .map_err(|e| ApiError::new(ErrorClass::Internal, format!("write task: {e}")))??;
    blocking(move || {
        let fresh = state.store.load(&obj.fs, &obj.path)?;
        Ok(state.store.attributes(&fresh))
    })
    .await
    .map(Json)
}

/// Positions the file (truncating it first for a PUT) and copies the body into it.
async fn copy_body(
    mut file: tokio::fs::File,
    mut stream: axum::body::BodyDataStream,
    offset: u64,
    replace: bool,
    path: &str,
) -> ApiResult<()> {
    let io = |e: std::io::Error| ApiError::io(&e, path);
    let positioned = async {
        if replace {
            file.set_len(0).await?;
        }
        file.seek(std::io::SeekFrom::Start(offset)).await.map(drop)
    }
    .await;
    if let Err(e) = positioned {
        return Err(drain(stream, io(e)).await);
    }
    let mut out = BufWriter::with_capacity(IO_BUF, file);
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                // Keep what arrived, written out before the lock is released.
                out.flush().await.map_err(io)?;
                return Err(ApiError::new(
                    ErrorClass::Decode,
                    format!("request body: {e}"),
                ));
            }
        };
        if let Err(e) = out.write_all(&chunk).await {
            return Err(drain(stream, io(e)).await);
        }
    }
    out.flush().await.map_err(io)
}

/// Reads and discards the rest of a request body, then gives back `err`.
async fn drain(mut stream: axum::body::BodyDataStream, err: ApiError) -> ApiError {
    while let Some(Ok(_)) = stream.next().await {}
    err
}
