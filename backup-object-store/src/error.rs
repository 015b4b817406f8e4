//! What went wrong in a cloud store, with the object and store it concerns.
//! Texts are neutral: no configuration keys or commands (the CLI adds those).

/// A cloud store's own error; converts into [`backup_core::Error::Backend`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum CloudError {
    #[error("cannot set up the store {location}")]
    Open {
        location: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{operation} {key} in {location}")]
    Object {
        operation: &'static str,
        key: String,
        location: String,
        #[source]
        source: object_store::Error,
    },
    #[error(
        "{location} does not support creating an object only when it is absent (conditional PUT, \
         If-None-Match: *); {key} was not written"
    )]
    NoConditionalCreate {
        key: String,
        location: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{key} in {location}: other writers were creating it at the same time; try again")]
    Contended { key: String, location: String },
}

impl CloudError {
    fn retryable(&self) -> bool {
        match self {
            CloudError::Object { source, .. } => retryable(source),
            CloudError::Contended { .. } => true,
            CloudError::Open { .. } | CloudError::NoConditionalCreate { .. } => false,
        }
    }
}

/// Transport failures and 5xx answers may pass; refusals (403, 400, …) will not.
fn retryable(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::Generic { source, .. } => match status(&**source) {
            Some(code) => code >= 500 || code == 408 || code == 429,
            None => true,
        },
        _ => false,
    }
}

/// The HTTP status of a failed request. object_store keeps its request error
/// type private, so the status is read from its message ("… status code: 501
/// Not Implemented …"); a message without one gives `None`.
pub(crate) fn status(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if let Some((_, after)) = text.split_once("status code: ") {
            if let Some(code) = after.get(..3).and_then(|d| d.parse().ok()) {
                return Some(code);
            }
        }
        cause = c.source();
    }
    None
}

/// A cloud store error as the core's, under the store's backend name.
pub(crate) fn into_core(backend: &'static str, e: CloudError) -> backup_core::Error {
    backup_core::Error::Backend {
        backend,
        retryable: e.retryable(),
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error(
        "Error performing PUT http://h/b/k in 2ms - Server returned non-2xx status code: 501 Not Implemented: <Error/>"
    )]
    struct Fake;

    #[test]
    fn status_is_read_from_the_cause_chain() {
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(Fake),
        };
        assert_eq!(status(&e), Some(501));
        assert!(retryable(&e));
        let plain = object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        };
        assert_eq!(status(&plain), None);
        assert!(retryable(&plain));
    }
}
