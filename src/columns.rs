//! Which columns a columnar source reads: a row type's fields as the CSV and Parquet
//! columns it decodes, and a source's splits narrowed to another row type's columns (a
//! `select` right after the source reads only those).

use ringleader_core::data::Data;
use ringleader_core::io::source::{self, SchemaFn, Split};

/// The splits of a CSV or Parquet source of `T` rows reading only `U`'s columns instead
/// (`select` right after the source); `None` for any other source, or a field `T` lacks.
pub(crate) fn projected_splits<T: Data, U: Data>(splits: &[Split]) -> Option<Vec<Split>> {
    let have = csv_schema::<T>().ok()?;
    let want = csv_schema::<U>().ok()?;
    let names: Vec<String> = want.fields().iter().map(|f| f.name().clone()).collect();
    splits
        .iter()
        .map(|split| match split {
            Split::Csv { path, piece, .. } => {
                let columns = names
                    .iter()
                    .map(|name| piece.columns.get(have.index_of(name).ok()?).copied())
                    .collect::<Option<Vec<u32>>>()?;
                Some(Split::Csv {
                    path: path.clone(),
                    schema: ringleader_core::ship!(csv_schema::<U> as SchemaFn),
                    piece: source::csv::Piece {
                        columns,
                        ..piece.clone()
                    },
                })
            }
            Split::Parquet { path, row_groups, .. } => Some(Split::Parquet {
                path: path.clone(),
                row_groups: row_groups.clone(),
                columns: Some(names.clone()),
            }),
            _ => None,
        })
        .collect()
}

/// The Arrow schema of `T`'s fields, as CSV columns.
pub(crate) fn csv_schema<T: Data>() -> ringleader_core::Result<arrow_schema::SchemaRef> {
    ringleader_core::data::table_schema::<T>()
}
