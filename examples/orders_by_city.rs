//! Joins orders to their customers and groups them by city: per city, the number of
//! orders, their total and the customers who ordered. Uses `join` and `group_by_key` on
//! typed CSV rows.
//!
//! ```text
//! cargo run --release --example orders_by_city -- --customers datasets/fixtures/shop/customers --orders datasets/fixtures/shop/orders --output target/cities --overwrite
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringleader::{Output, OutputFormat};
use serde::{Deserialize, Serialize};

/// Orders per city.
#[derive(Parser)]
struct Args {
    /// CSV files with columns customer_id,name,city.
    #[arg(long)]
    customers: PathBuf,
    /// CSV files with columns order_id,customer_id,amount.
    #[arg(long)]
    orders: PathBuf,
    /// The output directory (refused if it exists, unless --overwrite).
    #[arg(long)]
    output: PathBuf,
    /// Replace an existing output directory once the new output is complete.
    #[arg(long)]
    overwrite: bool,
    /// text: `city<TAB>orders<TAB>total<TAB>names` lines; arrow, parquet: those columns.
    #[arg(long, value_enum, default_value_t)]
    output_format: OutputFormat,
}

/// One city's orders.
#[derive(Serialize, Deserialize)]
struct CityOrders {
    city: String,
    orders: u64,
    total: i64,
    /// The distinct names of the customers who ordered, sorted, comma-separated.
    names: String,
}

#[derive(Serialize, Deserialize)]
struct Customer {
    customer_id: i64,
    name: String,
    city: String,
}

#[derive(Serialize, Deserialize)]
struct Order {
    order_id: i64,
    customer_id: i64,
    amount: i64,
}

fn main() -> ExitCode {
    ringleader::run(|ctx| {
        let args = Args::parse();
        let customers = ctx
            .csv_files::<Customer>(&args.customers)?
            .map(|c| (c.customer_id, (c.name, c.city)));
        let orders = ctx.csv_files::<Order>(&args.orders)?.map(|o| (o.customer_id, o.amount));
        let cities = customers
            .join(&orders)
            .map(|(_, ((name, city), amount))| (city, (name, amount)))
            .group_by_key()
            .map(|(city, orders)| {
                let total: i64 = orders.iter().map(|(_, amount)| amount).sum();
                let mut names: Vec<String> = orders.into_iter().map(|(name, _)| name).collect();
                let count = names.len() as u64;
                names.sort();
                names.dedup();
                CityOrders {
                    city,
                    orders: count,
                    total,
                    names: names.join(","),
                }
            });
        let output = Output::new(&args.output).overwrite(args.overwrite);
        let saved = match args.output_format {
            OutputFormat::Text => cities
                .map(|c| format!("{}\t{}\t{}\t{}", c.city, c.orders, c.total, c.names))
                .save_text(output)?,
            OutputFormat::Arrow => cities.save_arrow(output)?,
            OutputFormat::Parquet => cities.save_parquet(output)?,
        };
        println!("{} cities in {}", saved.rows, args.output.display());
        Ok(())
    })
}
