from wsgidav._middleware import BaseMiddleware as BaseMiddleware
