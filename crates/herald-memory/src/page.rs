//! Pages of in-memory listings. A cursor carries the sort key of the last item and the
//! listing's scope (what is listed, under which filter), so a cursor of one listing is
//! refused by another, as the DynamoDB stores refuse it.

use herald_store::{decode_cursor, encode_cursor, Page, StoreError, MAX_PAGE_SIZE};

/// The page of `items` (sorted by their key, ascending) after `cursor`, of at most
/// `limit` (clamped to 1..=[`MAX_PAGE_SIZE`]) items; `scope` names the listing.
pub fn page<T>(
    scope: &str,
    items: impl IntoIterator<Item = (String, T)>,
    limit: i32,
    cursor: Option<&str>,
) -> Result<Page<T>, StoreError> {
    let after = match cursor {
        None => None,
        Some(c) => Some(
            decode_cursor(c)?
                .strip_prefix(&format!("{scope}|"))
                .ok_or(StoreError::BadCursor)?
                .to_owned(),
        ),
    };
    let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
    let mut rest = items
        .into_iter()
        .filter(|(key, _)| after.as_ref().is_none_or(|a| key > a))
        .peekable();
    let mut page = Vec::new();
    let mut last = None;
    while page.len() < limit {
        let Some((key, item)) = rest.next() else {
            break;
        };
        page.push(item);
        last = Some(key);
    }
    let next_cursor = match (rest.peek(), last) {
        (Some(_), Some(last)) => Some(encode_cursor(&format!("{scope}|{last}"))),
        _ => None,
    };
    Ok(Page {
        items: page,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_resume_after_their_cursor_the_last_has_none_and_others_are_refused() {
        let items = || (1..=5).map(|n| (format!("k{n}"), n));
        let first = page("s", items(), 2, None).unwrap();
        assert_eq!(first.items, vec![1, 2]);
        let second = page("s", items(), 2, first.next_cursor.as_deref()).unwrap();
        assert_eq!(second.items, vec![3, 4]);
        let last = page("s", items(), 2, second.next_cursor.as_deref()).unwrap();
        assert_eq!(last.items, vec![5]);
        assert_eq!(last.next_cursor, None);
        let refused = |cursor: Option<&str>| {
            matches!(page("t", items(), 2, cursor), Err(StoreError::BadCursor))
        };
        assert!(refused(Some("!!")), "garbage");
        assert!(
            refused(first.next_cursor.as_deref()),
            "another listing's cursor"
        );
    }
}
