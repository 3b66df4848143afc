//! Listings as RabbitMQ's management API serves them: sorting
//! (`sort`, `sort_reverse`), pagination with a name filter (`page`,
//! `page_size`, `name`, `use_regex`) and column selection (`columns`,
//! in [`super::columns`], which also bounds the parameters).
//!
//! The rules are RabbitMQ's (`rabbit_mgmt_util`):
//! - without `page` the whole list comes back as a JSON array, sorted and
//!   unfiltered; with `page` an envelope `{filtered_count, item_count,
//!   items, page, page_count, page_size, total_count}`;
//! - the sort is by the `sort` column (dotted paths reach into objects)
//!   then by vhost and name; a missing value sorts as 0, and values of
//!   different kinds sort numbers first, then booleans and null, then
//!   objects and lists, then strings (Erlang's term order); `sort=` with
//!   an empty value leaves the list unsorted;
//! - `name` matches a substring, ignoring case, or with `use_regex=true`
//!   a case-insensitive regular expression;
//! - `page_size` defaults to 100 and may not exceed 500.
//!
//! Rows are only turned into JSON for the page that is returned when the
//! sort is on a column the row type knows how to compare directly
//! ([`Row::sort_value`]): a page of 100 out of 100,000 queues builds 100
//! JSON objects, not 100,000. On other columns every row's JSON is built
//! once to read its sort values, and a page keeps only those values, not
//! the objects.

use std::cmp::Ordering;
use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use super::columns::Columns;
use super::error::{ApiError, ApiResult};

pub(crate) const DEFAULT_PAGE_SIZE: usize = 100;
pub(crate) const MAX_PAGE_SIZE: usize = 500;
/// A value to sort by, ordered as Erlang orders terms.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SortValue {
    Number(f64),
    /// true, false, null: atoms in Erlang, after numbers.
    Atom(&'static str),
    /// Objects and lists.
    Compound(String),
    Text(String),
}

impl SortValue {
    fn rank(&self) -> u8 {
        match self {
            SortValue::Number(_) => 0,
            SortValue::Atom(_) => 1,
            SortValue::Compound(_) => 2,
            SortValue::Text(_) => 3,
        }
    }

    fn of_json(v: Option<&Value>) -> SortValue {
        match v {
            None => SortValue::Number(0.0),
            Some(Value::Number(n)) => SortValue::Number(n.as_f64().unwrap_or(0.0)),
            Some(Value::Bool(true)) => SortValue::Atom("true"),
            Some(Value::Bool(false)) => SortValue::Atom("false"),
            Some(Value::Null) => SortValue::Atom("null"),
            Some(Value::String(s)) => SortValue::Text(s.clone()),
            Some(other) => SortValue::Compound(other.to_string()),
        }
    }
}

impl PartialOrd for SortValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(match (self, other) {
            (SortValue::Number(a), SortValue::Number(b)) => a.total_cmp(b),
            (SortValue::Atom(a), SortValue::Atom(b)) => a.cmp(b),
            (SortValue::Compound(a), SortValue::Compound(b)) => a.cmp(b),
            (SortValue::Text(a), SortValue::Text(b)) => a.cmp(b),
            (a, b) => a.rank().cmp(&b.rank()),
        })
    }
}

/// One listed object.
pub(crate) trait Row {
    /// The value `name` filters on.
    fn name(&self) -> &str;
    /// The name's bytes, for sorting (byte order is code point order).
    fn name_bytes(&self) -> &[u8] {
        self.name().as_bytes()
    }
    /// Its vhost, for the default sort (empty where there is none).
    fn vhost(&self) -> &str {
        ""
    }
    /// The value of a column, if the row can tell without building its
    /// JSON; `None` sends the listing down the slow path.
    fn sort_value(&self, column: &str) -> Option<SortValue> {
        let _ = column;
        None
    }
    fn to_json(&self) -> Value;
}

/// The listing parameters of a request.
#[derive(Debug, Default, Clone)]
pub(crate) struct ListQuery {
    pub sort: Option<String>,
    pub sort_reverse: bool,
    pub page: Option<String>,
    pub page_size: Option<String>,
    pub name: Option<String>,
    pub use_regex: bool,
    pub columns: Option<String>,
    pub disable_stats: bool,
}

impl ListQuery {
    /// For listings RabbitMQ keeps in their own order (bindings,
    /// consumers) unless `sort` asks otherwise.
    pub fn in_given_order(q: &HashMap<String, String>) -> ListQuery {
        let l = ListQuery::from_map(q);
        ListQuery {
            sort: l.sort.or(Some(String::new())),
            ..l
        }
    }

    pub fn from_map(q: &HashMap<String, String>) -> ListQuery {
        ListQuery {
            sort: q.get("sort").cloned(),
            sort_reverse: q.get("sort_reverse").is_some_and(|v| v == "true"),
            page: q.get("page").cloned(),
            page_size: q.get("page_size").cloned(),
            name: q.get("name").cloned(),
            use_regex: q.get("use_regex").is_some_and(|v| v == "true"),
            columns: q.get("columns").cloned(),
            disable_stats: q.get("disable_stats").is_some_and(|v| v == "true"),
        }
    }
}

struct Page {
    number: usize,
    size: usize,
}

fn parse_page(q: &ListQuery) -> ApiResult<Option<Page>> {
    let Some(p) = &q.page else {
        return Ok(None);
    };
    let number = p.trim().parse::<i64>();
    let size = match &q.page_size {
        None => Ok(DEFAULT_PAGE_SIZE as i64),
        Some(s) => s.trim().parse::<i64>(),
    };
    let (Ok(number), Ok(size)) = (number, size) else {
        return Err(ApiError::bad_request_type(
            "bad_request",
            "Pagination parameters are invalid",
        ));
    };
    if number < 1 || size < 1 || size > MAX_PAGE_SIZE as i64 {
        return Err(ApiError::bad_request_type(
            "invalid_pagination_parameters",
            format!("Invalid pagination parameters: page number {number}, page size {size}"),
        ));
    }
    Ok(Some(Page {
        number: number as usize,
        size: size as usize,
    }))
}

/// What a name filter matches.
enum NameFilter {
    Substring(String),
    Regex(regex::Regex),
}

impl NameFilter {
    fn new(q: &ListQuery) -> ApiResult<Option<NameFilter>> {
        let Some(name) = q.name.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        if q.use_regex {
            let re = regex::RegexBuilder::new(name)
                .case_insensitive(true)
                .size_limit(1 << 20)
                .build()
                .map_err(|_| ApiError::bad_request("Pagination parameters are invalid"))?;
            Ok(Some(NameFilter::Regex(re)))
        } else {
            Ok(Some(NameFilter::Substring(name.to_lowercase())))
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            // ASCII needles (the usual case) match without allocating.
            NameFilter::Substring(s) if s.is_ascii() => {
                s.is_empty()
                    || name
                        .as_bytes()
                        .windows(s.len())
                        .any(|w| w.eq_ignore_ascii_case(s.as_bytes()))
            }
            NameFilter::Substring(s) => name.to_lowercase().contains(s.as_str()),
            NameFilter::Regex(re) => re.is_match(name),
        }
    }
}

/// One sort criterion, in order: compared in place (names) or through a
/// value read once per row.
enum SortKey {
    Name,
    Vhost,
    Column(usize),
}

/// A row's place in the sort: what most comparisons need, in 32 bytes,
/// so that sorting 100,000 rows moves little memory.
#[derive(Clone, Copy)]
struct Key {
    /// The first 16 bytes of its name, big-endian: most name comparisons
    /// end here, without following the row's pointers.
    name_prefix: u128,
    /// Its vhost's rank among the listing's vhosts.
    vhost_rank: u32,
    /// Its position in the listing as given (the last sort key).
    index: u32,
}

/// The first 16 bytes of a name as a big-endian number (zero-padded): it
/// orders names as their bytes do, up to ties decided by the full names.
fn name_prefix(name: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    let n = name.len().min(16);
    b[..n].copy_from_slice(&name[..n]);
    u128::from_be_bytes(b)
}

/// Looks up a dotted path (`message_stats.publish_details.rate`).
fn dotted<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    Some(cur)
}

/// Sorts, filters, pages and shapes `rows` as the request asks.
pub(crate) fn respond<R: Row>(rows: Vec<R>, q: &ListQuery) -> ApiResult<Response> {
    let page = parse_page(q)?;
    let filter = if page.is_some() {
        NameFilter::new(q)?
    } else {
        None
    };
    let total = rows.len();
    // The name filter first: less to sort (only a paged listing filters).
    let rows: Vec<R> = match &filter {
        Some(f) => rows.into_iter().filter(|r| f.matches(r.name())).collect(),
        None => rows,
    };
    let sort_keys: Option<Vec<String>> = match q.sort.as_deref() {
        Some("") => None,
        Some(s) => {
            let mut keys = vec![s.to_string()];
            for d in ["vhost", "name"] {
                if s != d {
                    keys.push(d.to_string());
                }
            }
            Some(keys)
        }
        None => Some(vec!["vhost".into(), "name".into()]),
    };
    // Fast path: every sort column known to the row type; names compare
    // in place, other columns are read once per row.
    let fast = sort_keys.as_ref().is_none_or(|keys| {
        rows.first().is_none_or(|r| {
            keys.iter()
                .all(|k| k == "vhost" || k == "name" || r.sort_value(k).is_some())
        })
    });
    let keys: Vec<SortKey> = sort_keys
        .iter()
        .flatten()
        .scan(0usize, |col, k| {
            Some(match k.as_str() {
                "name" if fast => SortKey::Name,
                "vhost" if fast => SortKey::Vhost,
                _ => {
                    *col += 1;
                    SortKey::Column(*col - 1)
                }
            })
        })
        .collect();
    // Vhosts compare by rank: a few distinct names, ranked once.
    let mut vhost_names: Vec<&str> = rows.iter().map(|r| r.vhost()).collect();
    vhost_names.sort_unstable();
    vhost_names.dedup();
    // What the sort reads, per row: the sort columns' values (or, on the
    // slow path, every key read from the row's JSON, and without a page
    // the JSON itself, which is all returned anyway).
    let mut cols: Vec<Vec<SortValue>> = Vec::new();
    let mut jsons: Vec<Option<Value>> = Vec::new();
    if let Some(names) = &sort_keys {
        for r in &rows {
            if fast {
                let c: Vec<SortValue> = names
                    .iter()
                    .filter(|k| *k != "name" && *k != "vhost")
                    .map(|k| r.sort_value(k).unwrap_or(SortValue::Number(0.0)))
                    .collect();
                if !c.is_empty() {
                    cols.push(c);
                }
            } else {
                let j = r.to_json();
                cols.push(
                    names
                        .iter()
                        .map(|k| SortValue::of_json(dotted(&j, k)))
                        .collect(),
                );
                // A page keeps only its sort values: its rows' JSON is
                // built again for the page alone, so sorting 100,000
                // queues on such a column doesn't hold 100,000 objects.
                if page.is_none() {
                    jsons.push(Some(j));
                }
            }
        }
    }
    // The sort moves these small keys, not the rows.
    let mut items: Vec<Key> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| Key {
            name_prefix: name_prefix(r.name_bytes()),
            vhost_rank: vhost_names.binary_search(&r.vhost()).unwrap_or(0) as u32,
            index: i as u32,
        })
        .collect();
    // The order RabbitMQ gives (a stable sort, reversed on request) made
    // total by the original position, so that partial sorts agree with it.
    let reverse = q.sort_reverse;
    let order = |a: &Key, b: &Key| -> Ordering {
        let (a, b) = if reverse { (b, a) } else { (a, b) };
        let (ia, ib) = (a.index as usize, b.index as usize);
        for k in &keys {
            let o = match k {
                SortKey::Name => a
                    .name_prefix
                    .cmp(&b.name_prefix)
                    .then_with(|| rows[ia].name_bytes().cmp(rows[ib].name_bytes())),
                SortKey::Vhost => a.vhost_rank.cmp(&b.vhost_rank),
                SortKey::Column(c) => cols[ia][*c]
                    .partial_cmp(&cols[ib][*c])
                    .unwrap_or(Ordering::Equal),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        a.index.cmp(&b.index)
    };
    let sorted = sort_keys.is_some();
    let columns = Columns::parse(q.columns.as_deref());
    let shape = |k: &Key| -> Value {
        let i = k.index as usize;
        let v = jsons
            .get(i)
            .and_then(|j| j.clone())
            .unwrap_or_else(|| rows[i].to_json());
        columns.apply(v)
    };
    let Some(page) = page else {
        if sorted {
            items.sort_unstable_by(order);
        } else if reverse {
            items.reverse();
        }
        let out: Vec<Value> = items.iter().map(shape).collect();
        return Ok(Json(Value::Array(out)).into_response());
    };
    let filtered = items.len();
    let offset = (page.number - 1) * page.size;
    if offset > filtered {
        return Err(ApiError::bad_request_type(
            "page_out_of_range",
            format!(
                "Page out of range, page: {} page size: {}, len: {}",
                page.number, page.size, filtered
            ),
        ));
    }
    let end = (offset + page.size).min(filtered);
    if sorted {
        // Only the page is put in order: the items before `end` are
        // selected, then those from `offset`, then sorted (O(n), not
        // O(n log n), for a page of a big listing).
        if end < filtered && end > 0 {
            items.select_nth_unstable_by(end - 1, order);
        }
        let head = &mut items[..end];
        if offset > 0 && offset < end {
            head.select_nth_unstable_by(offset, order);
        }
        items[offset..end].sort_unstable_by(order);
    } else if reverse {
        items.reverse();
    }
    let slice: Vec<Value> = items[offset..end].iter().map(shape).collect();
    let mut env = Map::new();
    env.insert("filtered_count".into(), filtered.into());
    env.insert("item_count".into(), slice.len().into());
    env.insert("items".into(), Value::Array(slice));
    env.insert("page".into(), page.number.into());
    env.insert("page_count".into(), filtered.div_ceil(page.size).into());
    env.insert("page_size".into(), page.size.into());
    env.insert("total_count".into(), total.into());
    Ok(Json(Value::Object(env)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct R(&'static str, i64);
    impl Row for R {
        fn name(&self) -> &str {
            self.0
        }
        fn vhost(&self) -> &str {
            "/"
        }
        fn sort_value(&self, c: &str) -> Option<SortValue> {
            (c == "n").then_some(SortValue::Number(self.1 as f64))
        }
        fn to_json(&self) -> Value {
            json!({"name": self.0, "vhost": "/", "n": self.1, "deep": {"x": -self.1, "y": 1}})
        }
    }

    fn rows() -> Vec<R> {
        vec![R("b", 2), R("a", 3), R("cA", 1), R("d", 0)]
    }

    async fn body(r: Response) -> Value {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    fn names(v: &Value) -> Vec<String> {
        let items = v.get("items").unwrap_or(v);
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    }

    fn q(pairs: &[(&str, &str)]) -> ListQuery {
        ListQuery::from_map(
            &pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[tokio::test]
    async fn sorts_pages_and_filters_as_rabbitmq() {
        let v = body(respond(rows(), &q(&[])).unwrap()).await;
        assert_eq!(names(&v), ["a", "b", "cA", "d"]);
        let v = body(respond(rows(), &q(&[("sort", "n")])).unwrap()).await;
        assert_eq!(names(&v), ["d", "cA", "b", "a"]);
        // A dotted column the row can't sort on directly: the JSON path.
        let v = body(respond(rows(), &q(&[("sort", "deep.x"), ("sort_reverse", "true")])).unwrap())
            .await;
        assert_eq!(names(&v), ["d", "cA", "b", "a"]);
        // The same on a page: the page's JSON is built again.
        let v = body(
            respond(
                rows(),
                &q(&[("sort", "deep.x"), ("page", "1"), ("page_size", "2")]),
            )
            .unwrap(),
        )
        .await;
        assert_eq!(names(&v), ["a", "b"]);
        assert_eq!(v["items"][0]["deep"]["x"], -3);
        let v = body(respond(rows(), &q(&[("page", "2"), ("page_size", "3")])).unwrap()).await;
        assert_eq!(names(&v), ["d"]);
        assert_eq!(v["page_count"], 2);
        assert_eq!(v["total_count"], 4);
        assert_eq!(v["filtered_count"], 4);
        assert_eq!(v["item_count"], 1);
        let v = body(respond(rows(), &q(&[("page", "1"), ("name", "CA")])).unwrap()).await;
        assert_eq!(names(&v), ["cA"]);
        assert_eq!(v["filtered_count"], 1);
        let v = body(
            respond(
                rows(),
                &q(&[("page", "1"), ("name", "^[ab]$"), ("use_regex", "true")]),
            )
            .unwrap(),
        )
        .await;
        assert_eq!(names(&v), ["a", "b"]);
        // Without a page the name filter is ignored, as RabbitMQ.
        let v = body(respond(rows(), &q(&[("name", "zzz")])).unwrap()).await;
        assert_eq!(names(&v).len(), 4);
        let v = body(respond(rows(), &q(&[("columns", "name,deep.y")])).unwrap()).await;
        assert_eq!(v[0], json!({"name": "a", "deep": {"y": 1}}));
        assert_eq!(
            respond(rows(), &q(&[("page", "4"), ("page_size", "2")]))
                .unwrap_err()
                .error,
            "page_out_of_range"
        );
        assert_eq!(
            respond(rows(), &q(&[("page", "1"), ("page_size", "501")]))
                .unwrap_err()
                .error,
            "invalid_pagination_parameters"
        );
        assert!(respond(rows(), &q(&[("page", "x")])).is_err());
        // The page right after the last item is empty, not an error.
        let v = body(respond(rows(), &q(&[("page", "2"), ("page_size", "4")])).unwrap()).await;
        assert_eq!(v["item_count"], 0);
    }

    /// A row whose name, vhost and column often tie.
    struct T(String, String, i64);
    impl Row for T {
        fn name(&self) -> &str {
            &self.0
        }
        fn vhost(&self) -> &str {
            &self.1
        }
        fn sort_value(&self, c: &str) -> Option<SortValue> {
            (c == "n").then_some(SortValue::Number(self.2 as f64))
        }
        fn to_json(&self) -> Value {
            json!({"name": self.0, "vhost": self.1, "n": self.2})
        }
    }

    proptest::proptest! {
        /// Paging sorts only the page; it must give exactly what sorting
        /// the whole list (stably, as RabbitMQ), reversing and slicing
        /// gives.
        #[test]
        fn a_page_is_the_slice_of_the_full_sort(
            rows in proptest::collection::vec((0u8..4, 0u8..2, 0i64..3), 0..40),
            sort in proptest::sample::select(vec!["", "n", "name", "vhost", "-"]),
            reverse in proptest::bool::ANY,
            page in 1usize..6,
            size in 1usize..12,
        ) {
            let make = || -> Vec<T> {
                rows.iter().map(|(n, v, x)| T(format!("q{n}"), format!("v{v}"), *x)).collect()
            };
            let mut pairs = vec![("page", page.to_string()), ("page_size", size.to_string())];
            if sort != "-" {
                pairs.push(("sort", sort.to_string()));
            }
            if reverse {
                pairs.push(("sort_reverse", "true".to_string()));
            }
            let query = ListQuery::from_map(
                &pairs.iter().map(|(a, b)| (a.to_string(), b.clone())).collect(),
            );
            // The reference: RabbitMQ's stable sort on [sort, vhost, name].
            let mut all = make();
            if !sort.is_empty() {
                let keys: Vec<&str> = match sort {
                    "-" => vec!["vhost", "name"],
                    "vhost" => vec!["vhost", "name"],
                    "name" => vec!["name", "vhost"],
                    other => vec![other, "vhost", "name"],
                };
                all.sort_by(|a, b| {
                    for k in &keys {
                        let o = match *k {
                            "name" => a.0.cmp(&b.0),
                            "vhost" => a.1.cmp(&b.1),
                            _ => a.2.cmp(&b.2),
                        };
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    Ordering::Equal
                });
            }
            if reverse {
                all.reverse();
            }
            let offset = (page - 1) * size;
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            match respond(make(), &query) {
                Err(e) => {
                    proptest::prop_assert!(offset > all.len());
                    proptest::prop_assert_eq!(e.error, "page_out_of_range");
                }
                Ok(r) => {
                    let v = rt.block_on(body(r));
                    let want: Vec<Value> = all.iter().skip(offset).take(size).map(|t| t.to_json()).collect();
                    proptest::prop_assert_eq!(&v["items"], &Value::Array(want));
                    proptest::prop_assert_eq!(&v["filtered_count"], &json!(all.len()));
                }
            }
        }
    }

    #[test]
    fn erlang_term_order() {
        let mut v = vec![
            SortValue::Text("a".into()),
            SortValue::Atom("true"),
            SortValue::Number(5.0),
            SortValue::Compound("{}".into()),
            SortValue::Number(-1.0),
        ];
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(
            v,
            vec![
                SortValue::Number(-1.0),
                SortValue::Number(5.0),
                SortValue::Atom("true"),
                SortValue::Compound("{}".into()),
                SortValue::Text("a".into()),
            ]
        );
    }
}
