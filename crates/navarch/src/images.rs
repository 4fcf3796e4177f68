//! `navarch images import|ls|rm`: the node's images without a registry. Imports go to
//! containerd (the agent's, at `DATA_DIR/containerd/containerd.sock`) through `ctr`;
//! listing and removing are CRI calls, so they work with `--container-runtime-endpoint`
//! too.

use std::io::Write;

use anyhow::{bail, Context};
use navarch_agent::containerd::{self, Layout};
use navarch_agent::runtime::cri;

use crate::cli::{ImagesArgs, ImagesCommand};

pub async fn run(args: ImagesArgs) -> anyhow::Result<()> {
    let socket = match &args.container_runtime_endpoint {
        Some(endpoint) => cri::endpoint_socket(endpoint)?,
        None => Layout::new(&args.data_dir).socket(),
    };
    if !socket.exists() {
        bail!(
            "no container runtime at {} (is the agent running with --data-dir {}?)",
            socket.display(),
            args.data_dir.display()
        );
    }
    let mut stdout = std::io::stdout().lock();
    match args.command {
        ImagesCommand::Import { files } => {
            for file in files {
                let names = containerd::import_image(&socket, &file)
                    .await
                    .with_context(|| format!("cannot import {}", file.display()))?;
                for name in names {
                    writeln!(stdout, "imported {name}")?;
                }
            }
        }
        ImagesCommand::Ls => {
            let mut images = cri::list_images(&socket).await?;
            images.sort_by(|a, b| a.repo_tags.cmp(&b.repo_tags));
            let rows: Vec<[String; 3]> = images
                .iter()
                .map(|image| {
                    let id = image.id.trim_start_matches("sha256:");
                    let tags = image.repo_tags.join(",");
                    [
                        if tags.is_empty() {
                            "<none>".to_string()
                        } else {
                            tags
                        },
                        id.chars().take(12).collect(),
                        human_size(image.size),
                    ]
                })
                .collect();
            print_table(&mut stdout, ["IMAGE", "ID", "SIZE"], &rows)?;
        }
        ImagesCommand::Rm { images } => {
            for image in images {
                cri::remove_image(&socket, &image)
                    .await
                    .with_context(|| format!("cannot remove {image}"))?;
                writeln!(stdout, "removed {image}")?;
            }
        }
    }
    stdout.flush()?;
    Ok(())
}

fn print_table(
    out: &mut impl Write,
    header: [&str; 3],
    rows: &[[String; 3]],
) -> anyhow::Result<()> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: [&str; 3]| {
        format!(
            "{:w0$}   {:w1$}   {}",
            cells[0],
            cells[1],
            cells[2],
            w0 = widths[0],
            w1 = widths[1]
        )
    };
    writeln!(out, "{}", line(header))?;
    for row in rows {
        writeln!(out, "{}", line([&row[0], &row[1], &row[2]]))?;
    }
    Ok(())
}

/// Sizes as `docker images` shows them (decimal units, one decimal).
fn human_size(bytes: u64) -> String {
    for (unit, scale) in [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)] {
        let value = bytes as f64 / scale;
        if value >= 1.0 {
            return format!("{value:.1}{unit}");
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker_images() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(2_129_920), "2.1MB");
        assert_eq!(human_size(3_000_000_000), "3.0GB");
    }

    #[test]
    fn tables_align_their_columns() {
        let mut out = Vec::new();
        let rows = [[
            "navarch.local/pause:1".to_string(),
            "abc".to_string(),
            "1kB".to_string(),
        ]];
        print_table(&mut out, ["IMAGE", "ID", "SIZE"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "IMAGE                   ID    SIZE\nnavarch.local/pause:1   abc   1kB\n"
        );
    }
}
