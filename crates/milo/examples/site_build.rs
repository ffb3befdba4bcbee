//! The specification's pipeline, doing real (small) work:
//!
//!     discover → parse → [render, assets] → write
//!
//! It generates a few markdown pages and a stylesheet in a temporary directory, then
//! discovers them, parses them, renders HTML and copies assets in parallel, and writes an
//! index. Run with `cargo run -p milo --example site_build`.

#![allow(clippy::print_stdout)] // an example prints its results

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use milo::format_duration;
use milo::pipeline::{Opaque, Phase, PhaseContext, Pipeline};

/// A parsed page: its title and body blocks.
struct Page {
    slug: String,
    title: String,
    blocks: Vec<Block>,
}

enum Block {
    Heading(usize, String),
    Paragraph(String),
    Item(String),
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("content");
    let out = dir.path().join("public");
    seed(&src)?;

    let discover = {
        let src = src.clone();
        Phase::new("discover", move |cx: &PhaseContext| {
            let mut files: Vec<PathBuf> = fs::read_dir(&src)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            files.sort();
            writeln!(cx.stdout(), "found {} files in {}", files.len(), src.display())?;
            Ok::<_, std::io::Error>(Opaque(files))
        })
        .description("Find the source files")
    };

    let parse = Phase::new("parse", |cx: &PhaseContext| {
        let files = cx.result::<Vec<PathBuf>>("discover").ok_or("discover gave no files")?;
        let mut pages = Vec::new();
        for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "md")) {
            let text = fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
            let slug = f.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            pages.push(parse_markdown(slug, &text));
        }
        writeln!(cx.stdout(), "parsed {} pages", pages.len()).map_err(|e| e.to_string())?;
        Ok::<_, String>(Opaque(Arc::new(pages)))
    })
    .depends_on(["discover"])
    .description("Parse markdown");

    let render = {
        let out = out.clone();
        Phase::new("render", move |cx: &PhaseContext| {
            let pages = cx.result::<Arc<Vec<Page>>>("parse").ok_or("parse gave no pages")?;
            fs::create_dir_all(&out).map_err(|e| e.to_string())?;
            let mut written = Vec::new();
            for page in pages.iter() {
                let path = out.join(format!("{}.html", page.slug));
                fs::write(&path, render_html(page)).map_err(|e| e.to_string())?;
                writeln!(cx.stdout(), "rendered {}", path.display()).map_err(|e| e.to_string())?;
                written.push(format!("{}.html", page.slug));
            }
            Ok::<_, String>(written)
        })
        .depends_on(["parse"])
        .parallel(true)
        .weight(3)
        .description("Render HTML")
    };

    let assets = {
        let (src, out) = (src.clone(), out.clone());
        Phase::new("assets", move |cx: &PhaseContext| {
            let dest = out.join("static");
            fs::create_dir_all(&dest)?;
            let mut copied = 0_u64;
            for entry in fs::read_dir(&src)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "css" || e == "txt") {
                    let to = dest.join(path.file_name().unwrap_or_default());
                    copied += fs::copy(&path, &to)?;
                    writeln!(cx.stdout(), "copied {}", to.display())?;
                }
            }
            Ok::<_, std::io::Error>(copied)
        })
        .depends_on(["parse"])
        .parallel(true)
        .description("Copy static assets")
    };

    let write = {
        let out = out.clone();
        Phase::new("write", move |cx: &PhaseContext| {
            let pages = cx.result::<Vec<String>>("render").ok_or("render gave no pages")?;
            let bytes = cx.result::<u64>("assets").copied().unwrap_or(0);
            let mut index = String::from("<!doctype html>\n<title>Index</title>\n<ul>\n");
            for p in pages {
                index.push_str(&format!("  <li><a href=\"{p}\">{p}</a></li>\n"));
            }
            index.push_str("</ul>\n");
            let path = out.join("index.html");
            fs::write(&path, &index).map_err(|e| e.to_string())?;
            writeln!(
                cx.stdout(),
                "wrote {} ({} pages, {bytes} bytes of assets)",
                path.display(),
                pages.len()
            )
            .map_err(|e| e.to_string())?;
            Ok::<_, String>(path.display().to_string())
        })
        .depends_on(["render", "assets"])
        .description("Write the index")
    };

    let pipeline = Pipeline::new("build", [discover, parse, render, assets, write])?.capture_output(true);
    println!("execution order: {}", pipeline.execution_order().join(" → "));

    let run = pipeline.run_blocking()?;
    let state = &run.state;
    println!(
        "\npipeline `{}`: {} in {} (progress {:.0}%)",
        state.name,
        state.status,
        format_duration(std::time::Duration::from_secs_f64(state.elapsed)),
        state.progress * 100.0
    );
    for phase in state.phases_in_order() {
        println!(
            "  {:<9} {:<10} {:>10}  {}",
            &*phase.name,
            phase.status.as_str(),
            format_duration(std::time::Duration::from_secs_f64(phase.elapsed)),
            phase.info.description
        );
        for line in phase.logs.iter() {
            println!("  {:<9} │ {}", "", line.line);
        }
    }
    if let Some(error) = &state.error {
        println!("error: {error}");
    }
    let index = run.result::<String>("write").cloned().unwrap_or_default();
    println!("\nindex.html:\n{}", fs::read_to_string(&index).unwrap_or_default());
    if state.status != milo::pipeline::Status::Completed {
        std::process::exit(1);
    }
    Ok(())
}

/// Writes a few markdown pages and assets into `src`.
fn seed(src: &Path) -> std::io::Result<()> {
    fs::create_dir_all(src)?;
    let pages = [
        (
            "home",
            "# Welcome\n\nThis site was built by **milo**.\n\n- fast\n- observable\n",
        ),
        (
            "about",
            "# About\n\nA pipeline orchestrator.\n\n## History\n\nPorted from Python.\n",
        ),
        (
            "guide",
            "# Guide\n\nDefine phases, then run them.\n\n- discover\n- parse\n- render\n",
        ),
        ("faq", "# FAQ\n\n## Is it fast?\n\nYes.\n"),
    ];
    for (slug, text) in pages {
        fs::write(src.join(format!("{slug}.md")), text)?;
    }
    fs::write(src.join("style.css"), "body { font-family: sans-serif; }\n")?;
    fs::write(src.join("robots.txt"), "User-agent: *\n")?;
    Ok(())
}

fn parse_markdown(slug: String, text: &str) -> Page {
    let mut blocks = Vec::new();
    let mut para = String::new();
    let flush = |para: &mut String, blocks: &mut Vec<Block>| {
        if !para.is_empty() {
            blocks.push(Block::Paragraph(std::mem::take(para)));
        }
    };
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            flush(&mut para, &mut blocks);
        } else if let Some(rest) = line.strip_prefix("- ") {
            flush(&mut para, &mut blocks);
            blocks.push(Block::Item(rest.to_owned()));
        } else if line.starts_with('#') {
            flush(&mut para, &mut blocks);
            let level = line.chars().take_while(|&c| c == '#').count();
            blocks.push(Block::Heading(level, line[level..].trim().to_owned()));
        } else {
            if !para.is_empty() {
                para.push(' ');
            }
            para.push_str(line);
        }
    }
    flush(&mut para, &mut blocks);
    let title = blocks
        .iter()
        .find_map(|b| match b {
            Block::Heading(1, t) => Some(t.clone()),
            _ => None,
        })
        .unwrap_or_else(|| slug.clone());
    Page { slug, title, blocks }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn inline(s: &str) -> String {
    // **bold**
    let mut out = String::new();
    for (i, part) in escape(s).split("**").enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<strong>{part}</strong>"));
        } else {
            out.push_str(part);
        }
    }
    out
}

fn render_html(page: &Page) -> String {
    let mut html = format!("<!doctype html>\n<title>{}</title>\n", escape(&page.title));
    let mut in_list = false;
    for block in &page.blocks {
        let item = matches!(block, Block::Item(_));
        if item && !in_list {
            html.push_str("<ul>\n");
        } else if !item && in_list {
            html.push_str("</ul>\n");
        }
        in_list = item;
        match block {
            Block::Heading(level, text) => html.push_str(&format!("<h{level}>{}</h{level}>\n", inline(text))),
            Block::Paragraph(text) => html.push_str(&format!("<p>{}</p>\n", inline(text))),
            Block::Item(text) => html.push_str(&format!("  <li>{}</li>\n", inline(text))),
        }
    }
    if in_list {
        html.push_str("</ul>\n");
    }
    html
}
