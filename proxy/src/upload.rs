//! Turning an upload to the local API into files to publish: a tar archive of a
//! directory (a site), or one file's bytes; media types guessed from names.

use std::io::Read;

use bytes::Bytes;
use distroweb_net::Upload;
use distroweb_protocol::Id;
use tokio::sync::mpsc;

/// Most files one site upload may hold: what the protocol's site builder
/// takes (a site of more files than one manifest holds is an index of them).
pub const MAX_UPLOAD_FILES: usize = distroweb_protocol::content::MAX_BUILT_SITE_FILES;

/// Why an upload cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The archive is not a readable tar.
    #[error("not a readable tar archive")]
    BadArchive(#[source] std::io::Error),
    /// An entry's name is not UTF-8.
    #[error("file names must be UTF-8")]
    NotUtf8,
    /// Too many files.
    #[error("more than {MAX_UPLOAD_FILES} files")]
    TooManyFiles,
    /// Nothing to publish.
    #[error("the archive holds no files")]
    Empty,
    /// Writing the content to the node failed.
    #[error(transparent)]
    Node(#[from] distroweb_net::UploadError),
}

/// The media type for a file name: by extension, `text/*` and friends in UTF-8.
pub fn media_type(name: &str) -> String {
    let guess = mime_guess::from_path(name).first_or_octet_stream();
    let textual = guess.type_() == mime_guess::mime::TEXT
        || matches!(
            guess.subtype().as_str(),
            "javascript" | "json" | "xml" | "svg"
        );
    if textual && guess.get_param("charset").is_none() {
        format!("{guess}; charset=utf-8")
    } else {
        guess.to_string()
    }
}

/// Writes the regular files of a tar archive, read as it streams in, to
/// `upload` as a site and returns the site's id and its file count. Paths are
/// checked by the protocol before each file is read; directories and links are
/// skipped. Whatever follows the archive's end (its padding) is read and dropped,
/// so the whole upload is taken in.
pub fn write_site(upload: &mut Upload, archive: &mut dyn Read) -> Result<(Id, usize), UploadError> {
    let files = write_entries(upload, tar::Archive::new(&mut *archive))?;
    if files == 0 {
        return Err(UploadError::Empty);
    }
    std::io::copy(archive, &mut std::io::sink()).map_err(UploadError::BadArchive)?;
    Ok((upload.seal_site()?, files))
}

/// Adds every regular file of `tar` to the site; returns how many.
fn write_entries(
    upload: &mut Upload,
    mut tar: tar::Archive<&mut dyn Read>,
) -> Result<usize, UploadError> {
    let mut files = 0usize;
    for entry in tar.entries().map_err(UploadError::BadArchive)? {
        let mut entry = entry.map_err(UploadError::BadArchive)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path_bytes().into_owned();
        let name = std::str::from_utf8(&path).map_err(|_| UploadError::NotUtf8)?;
        if files >= MAX_UPLOAD_FILES {
            return Err(UploadError::TooManyFiles);
        }
        let media_type = media_type(name);
        upload.add_site_file(&path, &media_type, &mut entry)?;
        files += 1;
    }
    Ok(files)
}

/// One piece of an upload on its way from the HTTP body to the blocking
/// thread that writes it.
#[derive(Debug)]
pub enum Piece {
    /// The next bytes.
    Data(Bytes),
    /// The body ended here, complete.
    End,
}

/// The HTTP body as a blocking [`Read`], fed by a bounded channel: the writer
/// takes the bytes no faster than the store does, and the body is read no
/// faster than that, so memory stays a few pieces deep whatever the size.
#[derive(Debug)]
pub struct BodyReader {
    pieces: mpsc::Receiver<Piece>,
    current: Bytes,
    ended: bool,
}

impl BodyReader {
    /// A reader of what arrives on `pieces`.
    pub fn new(pieces: mpsc::Receiver<Piece>) -> Self {
        BodyReader {
            pieces,
            current: Bytes::new(),
            ended: false,
        }
    }
}

impl Read for BodyReader {
    /// Blocks until bytes arrive. A body that stops without [`Piece::End`] (the
    /// client went away, or stalled and was cut off) is an error, never a
    /// shorter file.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() && !self.ended {
            match self.pieces.blocking_recv() {
                Some(Piece::Data(b)) => self.current = b,
                Some(Piece::End) => self.ended = true,
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the upload broke off",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(media_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(media_type("a/site.css"), "text/css; charset=utf-8");
        assert_eq!(media_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(media_type("img.png"), "image/png");
        assert_eq!(media_type("noext"), "application/octet-stream");
    }

    #[test]
    fn the_body_reader_gives_the_pieces_and_refuses_a_body_cut_short() {
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Piece::Data(Bytes::from_static(b"hello, ")))
            .unwrap();
        tx.try_send(Piece::Data(Bytes::from_static(b"world")))
            .unwrap();
        tx.try_send(Piece::End).unwrap();
        let mut out = String::new();
        BodyReader::new(rx).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello, world");

        let (tx, rx) = mpsc::channel(4);
        tx.try_send(Piece::Data(Bytes::from_static(b"half")))
            .unwrap();
        drop(tx);
        let mut out = Vec::new();
        let e = BodyReader::new(rx).read_to_end(&mut out).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
