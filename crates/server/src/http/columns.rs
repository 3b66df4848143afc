//! What a request may ask of a listing's shape: `columns=a,b.c`
//! selection (listings select per item before paging; the router's
//! middleware trims single objects), and the bounds on the query
//! parameters whose size multiplies a request's work.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::error::{ApiError, ApiResult};

/// The most columns a `columns=` selection may name: selecting costs
/// (keys × columns) per object, so a list of 30,000 made every listing
/// take a second. RabbitMQ's own UI asks for a few dozen.
pub(crate) const MAX_COLUMNS: usize = 128;
/// The most dotted parts in one column or sort key
/// (`message_stats.publish_details.rate` has 3).
pub(crate) const MAX_PATH_PARTS: usize = 16;

/// Refuses (400, RabbitMQ's `bad_request` shape) the query parameters
/// whose size multiplies the work of a request: more than
/// [`MAX_COLUMNS`] columns, a column or `sort` key deeper than
/// [`MAX_PATH_PARTS`]. Checked before the handler runs, for every GET.
/// (The rest is bounded elsewhere: the whole query by the 64 KiB header
/// buffer, `page_size` by [`MAX_PAGE_SIZE`], a `use_regex` name by the
/// regex size limit; a substring filter is linear in each name.)
pub(crate) fn check_query(q: &HashMap<String, String>) -> ApiResult<()> {
    if let Some(cols) = q.get("columns") {
        let n = cols.split(',').filter(|c| !c.is_empty()).count();
        if n > MAX_COLUMNS {
            return Err(ApiError::bad_request(format!(
                "too many columns: {n} (at most {MAX_COLUMNS})"
            )));
        }
        if cols
            .split(',')
            .any(|c| c.split('.').count() > MAX_PATH_PARTS)
        {
            return Err(ApiError::bad_request(format!(
                "a column has more than {MAX_PATH_PARTS} parts"
            )));
        }
    }
    if q.get("sort")
        .is_some_and(|s| s.split('.').count() > MAX_PATH_PARTS)
    {
        return Err(ApiError::bad_request(format!(
            "the sort key has more than {MAX_PATH_PARTS} parts"
        )));
    }
    Ok(())
}

/// A `columns=a,b.c` selection.
pub(crate) struct Columns(Option<Vec<Vec<String>>>);

impl Columns {
    pub fn parse(spec: Option<&str>) -> Columns {
        Columns(spec.map(|s| {
            s.split(',')
                .filter(|c| !c.is_empty())
                .map(|c| c.split('.').map(str::to_string).collect())
                .collect()
        }))
    }

    /// Keeps only the selected keys (and, for dotted columns, the selected
    /// keys inside).
    pub fn apply(&self, v: Value) -> Value {
        match &self.0 {
            None => v,
            Some(cols) => select(v, cols),
        }
    }
}

fn select(v: Value, cols: &[Vec<String>]) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                let sub: Vec<Vec<String>> = cols
                    .iter()
                    .filter(|c| c.first().is_some_and(|h| *h == k))
                    .map(|c| c[1..].to_vec())
                    .collect();
                if sub.is_empty() {
                    continue;
                }
                if sub.iter().any(|c| c.is_empty()) {
                    out.insert(k, val);
                } else {
                    out.insert(k, select(val, &sub));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(|i| select(i, cols)).collect()),
        other => other,
    }
}
