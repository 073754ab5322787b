//! Turning an upload to the local API into files to publish: a tar archive of a
//! directory (a site), or one file's bytes; media types guessed from names.

use std::io::Read;

use bytes::Bytes;
use distroweb_protocol::SiteFile;

/// Most files one site upload may hold (the protocol's site limit).
pub const MAX_UPLOAD_FILES: usize = 16_384;

/// Why an upload cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The archive is not a readable tar.
    #[error("not a readable tar archive: {0}")]
    BadArchive(std::io::Error),
    /// An entry's name is not UTF-8.
    #[error("file names must be UTF-8")]
    NotUtf8,
    /// Too many files.
    #[error("more than {MAX_UPLOAD_FILES} files")]
    TooManyFiles,
    /// Nothing to publish.
    #[error("the archive holds no files")]
    Empty,
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

/// The regular files in a tar archive, as site files (paths are checked by the
/// protocol when the site is published; directories and links are skipped).
pub fn site_from_tar(archive: &[u8]) -> Result<Vec<SiteFile>, UploadError> {
    let mut files = Vec::new();
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().map_err(UploadError::BadArchive)? {
        let mut entry = entry.map_err(UploadError::BadArchive)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path_bytes().into_owned();
        let name = std::str::from_utf8(&path)
            .map_err(|_| UploadError::NotUtf8)?
            .to_owned();
        if files.len() >= MAX_UPLOAD_FILES {
            return Err(UploadError::TooManyFiles);
        }
        // The archive is already in memory and bounded, so its sizes are too.
        let mut data = Vec::with_capacity(entry.size().min(archive.len() as u64) as usize);
        entry
            .read_to_end(&mut data)
            .map_err(UploadError::BadArchive)?;
        files.push(SiteFile::new(path, media_type(&name), Bytes::from(data)));
    }
    if files.is_empty() {
        return Err(UploadError::Empty);
    }
    Ok(files)
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
    fn tar_round_trip_and_refusals() {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [("index.html", &b"<h1>hi</h1>"[..]), ("css/a.css", b"h1{}")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        }
        let archive = b.into_inner().unwrap();
        let files = site_from_tar(&archive).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].path, b"css/a.css");
        assert_eq!(files[1].media_type, "text/css; charset=utf-8");
        assert_eq!(&files[0].data[..], b"<h1>hi</h1>");
        assert!(site_from_tar(b"definitely not a tar archive, but long enough?").is_err());
        assert!(matches!(
            site_from_tar(&[0u8; 1024]),
            Err(UploadError::Empty)
        ));
    }
}
