# The few lz4 names hubgate uses (lz4 ships no type information).
