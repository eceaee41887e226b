"""A digest of the latest technology news, each article cut to two sentences.

This is codemode's demo script: it runs inside the sandbox, where the
generated `mcp_tools` module turns each call below into one request to the
bridge, which forwards it to the `news` and `summarizer` MCP servers. Only what
this script prints leaves the sandbox.
"""

import textwrap

from mcp_tools import news, summarizer

CATEGORY = "technology"
ARTICLES = 5
SENTENCES = 2
WIDTH = 78
INDENT = "   "


def main():
    articles = news.fetch_latest(category=CATEGORY, limit=ARTICLES)["articles"]

    heading = f"Latest {CATEGORY} news"
    print(heading)
    print("=" * len(heading))
    print()

    for number, article in enumerate(articles, start=1):
        summary = summarizer.summarize(text=article["body"], max_sentences=SENTENCES)
        # The timestamp's date part is enough for a digest.
        date = article["published"][:10]
        title = f"{number}. {article['title']}"
        print(textwrap.fill(title, width=WIDTH, subsequent_indent=INDENT))
        print(f"{INDENT}{article['source']}, {date}")
        print(textwrap.fill(summary["summary"], width=WIDTH,
                            initial_indent=INDENT, subsequent_indent=INDENT))
        print()

    noun = "article" if len(articles) == 1 else "articles"
    print(f"Summarized {len(articles)} {CATEGORY} {noun} to {SENTENCES} sentences each.")


if __name__ == "__main__":
    main()
